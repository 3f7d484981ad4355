//! [`Python`]: this crate as a [`ship_core::Adapter`], for the `[python]` table.

use crate::config::PythonConfig;
use crate::wheelhouse::{self, WHEELHOUSE_DIR, Wheelhouse};
use ship_core::Extra;
use ship_core::TableError;
use ship_core::TaskSpec;
use ship_core::{Adapter, AdapterError as Error, Configured, Here, Init, adapter::check_roles};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The Python adapter: `[python]` read into a [`PythonConfig`].
///
/// ```
/// use ship_core::Adapter;
/// let table = figment::value::Value::from(figment::value::Dict::new());
/// let cfg = ship_python::Python.read(&table, &ship_core::stage::example()).unwrap();
/// assert_eq!(cfg.task_names(), ["python.venv", "python.prune"]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Python;

impl Adapter for Python {
    fn name(&self) -> &'static str {
        "python"
    }

    fn read(
        &self,
        table: &figment::value::Value,
        stage: &ship_core::Stage,
    ) -> Result<Box<dyn Configured>, TableError> {
        let cfg = PythonConfig::from_value(table)?;
        check_roles(stage, &["roles"], &cfg.roles)?;
        check_roles(stage, &["django", "roles"], &cfg.django.roles)?;
        Ok(Box::new(cfg))
    }

    fn init(&self, root: &Path) -> Option<Init> {
        let req = ["requirements.txt", "pyproject.toml"]
            .into_iter()
            .find(|f| root.join(f).is_file())?;
        Some(Init {
            found: "a Python project",
            linked_files: Some("[\"config/settings.py\"]"),
            table: format!(
                "# Python: wheels built once, here; each host installs them offline into a virtualenv\n\
                 # (linked as venv/) that is reused until the requirements change.\n\
                 [default.python]\n\
                 requirements = \"{req}\"\n\
                 # Django: migrate once per deploy (first web host, before any switch), collectstatic.\n\
                 # [default.python.django]\n\
                 # migrate = true\n\
                 # collectstatic = true\n\
                 # roles = [\"web\"]\n\n"
            ),
            // gunicorn's and `manage.py runserver`'s address when none is given.
            health: Some(
                "# The app server's address on each host (gunicorn binds 127.0.0.1:8000 unless told\n\
                 # otherwise): a release whose server does not answer there is switched back.\n\
                 url = \"http://127.0.0.1:8000/\"\n"
                    .to_owned(),
            ),
        })
    }
}

/// Where the wheels of a stage are built on this machine: `target/ship/wheelhouse/<stage>`.
fn wheelhouse_dir(here: &Here<'_>) -> PathBuf {
    here.stage_dir("wheelhouse")
}

impl Configured for PythonConfig {
    /// The wheels of the tree that ships (the commit's, for a `git` source), built out of
    /// that tree, in `target/ship/wheel-src/<stage>`.
    fn build(&self, here: &Here<'_>) -> Result<Vec<TaskSpec>, Error> {
        let wheels = wheelhouse::build(
            here.tree,
            self,
            &wheelhouse_dir(here),
            &here.stage_dir("wheel-src"),
        )?;
        Ok(crate::tasks(self, &wheels))
    }

    fn extras(&self, here: &Here<'_>) -> Result<Vec<Extra>, Error> {
        if !self.wheelhouse {
            return Ok(Vec::new());
        }
        let dir = wheelhouse_dir(here);
        if !dir.is_dir() {
            return Err(format!(
                "the wheels of the plan ({}) are gone; run `cargo ship plan {}` again",
                here.show(&dir),
                here.stage
            )
            .into());
        }
        Ok(vec![Extra {
            from: dir,
            to: WHEELHOUSE_DIR.to_owned(),
        }])
    }

    fn tasks_for_files(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<TaskSpec>, Error> {
        Ok(crate::tasks(self, &wheelhouse::from_files(self, files)))
    }

    fn listed_tasks(&self) -> Vec<TaskSpec> {
        let wheels = Wheelhouse {
            dir: None,
            wheels: Vec::new(),
            key: String::new(),
        };
        crate::tasks(self, &wheels)
    }
}
