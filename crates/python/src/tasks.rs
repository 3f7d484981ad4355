//! The host half: the tasks the adapter adds to a plan. Pure: they are data, run by the
//! driver like any user task (in the new release's directory, with `SHIP_*` set).

use crate::config::PythonConfig;
use crate::wheelhouse::{WHEELHOUSE_DIR, Wheelhouse};
use ship_core::Trees;
use ship_core::shell::quote;
use ship_core::{Phase, Target, TaskSpec};

/// The name of the task that makes or reuses the virtualenv (before `install`).
pub const VENV_TASK: &str = "python.venv";
/// The name of the task that removes virtualenvs no kept release uses (after `cleanup`).
pub const PRUNE_TASK: &str = "python.prune";

/// ` <first 12 characters>` of a key; nothing for an empty key (a listing, before any build).
fn short(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(" {}", &key[..key.len().min(12)])
    }
}

fn task(name: &str, run: String, description: String) -> TaskSpec {
    TaskSpec {
        name: name.to_owned(),
        run,
        before: None,
        after: None,
        roles: Vec::new(),
        once: false,
        once_per_role: false,
        local: false,
        description: Some(description),
    }
}

/// The tasks for `cfg`, given what the build made.
///
/// ```
/// use ship_python::{PythonConfig, Wheelhouse, tasks};
/// let cfg: PythonConfig = figment::value::Value::from(figment::value::Dict::new())
///     .deserialize().unwrap();
/// let wheels = Wheelhouse { dir: None, wheels: vec![], key: "ab12".repeat(16) };
/// let names: Vec<String> = tasks(&cfg, &wheels).into_iter().map(|t| t.name).collect();
/// assert_eq!(names, ["python.venv", "python.prune"]);
/// ```
pub fn tasks(cfg: &PythonConfig, wheels: &Wheelhouse) -> Vec<TaskSpec> {
    let mut out = Vec::new();
    let mut venv = task(
        VENV_TASK,
        venv_script(cfg, wheels),
        if cfg.wheelhouse {
            format!(
                "virtualenv{}: reused when the host has it, else made from {} with pip --no-index",
                short(&wheels.key),
                match wheels.wheels.len() {
                    _ if wheels.key.is_empty() => "the wheelhouse".to_owned(),
                    1 => "1 wheel".to_owned(),
                    n => format!("{n} wheels"),
                }
            )
        } else {
            format!(
                "virtualenv{}: reused when the host has it, else pip install -r {} from {}",
                short(&wheels.key),
                cfg.requirements,
                std::iter::once(cfg.index_url.as_deref().unwrap_or("PyPI"))
                    .chain(cfg.extra_index_url.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        },
    );
    venv.before = Some(Target::Phase(Phase::Install));
    venv.roles = cfg.roles.clone();
    out.push(venv);

    let python = format!("{}/bin/python manage.py", quote(&cfg.venv));
    if cfg.django.migrate {
        let mut t = task(
            "django.migrate",
            format!("{python} migrate --noinput"),
            "Django: migrate, once per deploy, before any host switches".to_owned(),
        );
        t.after = Some(Target::Phase(Phase::Install));
        t.roles = cfg.django_roles().to_vec();
        t.once = true;
        out.push(t);
    }
    if cfg.django.collectstatic {
        let mut t = task(
            "django.collectstatic",
            format!("{python} collectstatic --noinput"),
            "Django: collect static files on each host of its roles".to_owned(),
        );
        t.after = Some(Target::Phase(Phase::Install));
        t.roles = cfg.django_roles().to_vec();
        out.push(t);
    }
    let mut used: Vec<String> = Vec::new();
    for args in &cfg.manage {
        let word: String = args
            .split_whitespace()
            .next()
            .unwrap_or("command")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        let mut name = format!("manage.{word}");
        let mut n = 2;
        while used.contains(&name) {
            name = format!("manage.{word}.{n}");
            n += 1;
        }
        used.push(name.clone());
        let mut t = task(
            &name,
            format!("{python} {args}"),
            "a manage.py command, on each host of its roles".to_owned(),
        );
        t.after = Some(Target::Phase(Phase::Install));
        t.roles = cfg.roles.clone();
        out.push(t);
    }

    let mut prune = task(
        PRUNE_TASK,
        prune_script(cfg),
        "remove virtualenvs no kept release links to".to_owned(),
    );
    prune.after = Some(Target::Phase(Phase::Cleanup));
    prune.roles = cfg.roles.clone();
    out.push(prune);
    out
}

fn trees(cfg: &PythonConfig) -> Trees<'_> {
    Trees {
        kind: "venvs",
        tag: "ship-python",
        link: &cfg.venv,
    }
}

/// Makes `.ship/venvs/<key>-py<version>` unless the host has it complete, and links it
/// into the release. Each pip run appends a line to `.ship/venvs/installs.log`.
fn venv_script(cfg: &PythonConfig, wheels: &Wheelhouse) -> String {
    let install = if cfg.wheelhouse {
        format!(
            "set -- {WHEELHOUSE_DIR}/*.whl\n\
             if [ -e \"$1\" ]; then\n  \
             \"$dir/bin/python\" -m pip install --quiet --disable-pip-version-check --no-input \
             --no-index --no-deps \"$@\" || {{ echo \"ship-python: pip could not install the wheels on $SHIP_HOST (see above)\" >&2; exit 1; }}\n\
             fi"
        )
    } else {
        let mut index = cfg
            .index_url
            .as_ref()
            .map(|u| format!(" --index-url {}", quote(u)))
            .unwrap_or_default();
        for url in &cfg.extra_index_url {
            index.push_str(&format!(" --extra-index-url {}", quote(url)));
        }
        format!(
            "\"$dir/bin/python\" -m pip install --quiet --disable-pip-version-check --no-input{index} \
             -r {req} || {{ echo \"ship-python: pip install -r {req} failed on $SHIP_HOST (see above)\" >&2; exit 1; }}",
            req = quote(&cfg.requirements)
        )
    };
    let make = format!("\"$py\" -m venv \"$dir\"\n{install}");
    format!(
        r#"set -eu
py={py}
key={key}
command -v "$py" >/dev/null 2>&1 || {{ echo "ship-python: $py is not installed on $SHIP_HOST (set python = \"...\" in [python] to use another interpreter)" >&2; exit 1; }}
"$py" -c 'import venv, ensurepip' >/dev/null 2>&1 || {{ echo "ship-python: $py on $SHIP_HOST has no venv module (Debian and Ubuntu: apt-get install python3-venv)" >&2; exit 1; }}
ver=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
{reuse}"#,
        py = quote(&cfg.python),
        key = quote(&wheels.key),
        reuse = trees(cfg).reuse_script("\"$key-py$ver\"", &make),
    )
}

/// Removes the virtualenvs that neither `current` nor any release in `releases/` links to.
fn prune_script(cfg: &PythonConfig) -> String {
    trees(cfg).prune_script()
}
