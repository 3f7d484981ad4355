//! Every publishable crate of the workspace packages, offline, in dependency order (`cargo
//! package --workspace`: each crate against the ones packaged before it, as crates.io would
//! have them), and each `.crate` holds its README and both licences, its metadata, and
//! nothing that should not ship (no target/, no fixtures, nothing large).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root()).env_remove("CARGO_MAKEFLAGS");
    cmd
}

/// The crates cargo would publish, by package name, with their metadata.
fn publishable() -> BTreeMap<String, serde_json::Value> {
    let out = cargo()
        .args(["metadata", "--offline", "--locked", "--no-deps"])
        .args(["--format-version", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        // `publish = false` is `[]` here; null is "anywhere".
        .filter(|p| p["publish"] != serde_json::json!([]))
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p.clone()))
        .collect()
}

/// The files of a `.crate` (a gzipped tar), relative to its top directory, with their sizes.
fn entries(crate_file: &Path) -> BTreeMap<String, u64> {
    let file =
        std::fs::File::open(crate_file).unwrap_or_else(|e| panic!("{}: {e}", crate_file.display()));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut parts = path.components();
        parts.next(); // <name>-<version>/
        let rel = parts.as_path().to_string_lossy().into_owned();
        files.insert(rel, entry.header().size().unwrap());
    }
    files
}

fn read_entry(crate_file: &Path, name: &str) -> String {
    let file = std::fs::File::open(crate_file).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry
            .path()
            .unwrap()
            .components()
            .skip(1)
            .eq(Path::new(name).components())
        {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            return text;
        }
    }
    panic!("{} has no {name}", crate_file.display());
}

#[test]
fn only_the_tests_crate_is_unpublishable() {
    let names: Vec<String> = publishable().into_keys().collect();
    assert_eq!(
        names,
        [
            "cargo-ship-deploy",
            "ship-core",
            "ship-layouts",
            "ship-node",
            "ship-python",
            "ship-ssh",
        ]
    );
}

#[test]
fn every_publishable_crate_has_its_metadata() {
    for (name, package) in publishable() {
        for key in ["description", "license", "readme", "documentation"] {
            assert!(
                package[key].as_str().is_some_and(|v| !v.is_empty()),
                "{name} has no {key}"
            );
        }
        assert_eq!(package["license"], "MIT OR Apache-2.0", "{name}");
        // No project site exists: a repository key would point nowhere.
        assert!(
            package["repository"].is_null(),
            "{name}: {}",
            package["repository"]
        );
        for key in ["keywords", "categories"] {
            let list = package[key].as_array().unwrap();
            assert!(
                (1..=5).contains(&list.len()),
                "{name}: {key} must be 1 to 5 (crates.io's limit): {list:?}"
            );
        }
        for keyword in package["keywords"].as_array().unwrap() {
            let k = keyword.as_str().unwrap();
            assert!(
                k.len() <= 20
                    && k.starts_with(|c: char| c.is_ascii_alphabetic())
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_+".contains(c)),
                "{name}: crates.io refuses the keyword {k:?}"
            );
        }
    }
}

#[test]
fn every_publishable_crate_packages_offline_with_readme_and_licences_and_no_junk() {
    let target = tempfile::tempdir().unwrap();
    let out = cargo()
        .args(["package", "--workspace", "--exclude", "ship-tests"])
        .args(["--offline", "--locked", "--no-verify", "--allow-dirty"])
        .arg("--target-dir")
        .arg(target.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo package failed:\n{stderr}");

    // Dependency order: ship-core before every crate that depends on it, the binary last.
    let order: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Packaging "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(order.first(), Some(&"ship-core"), "{stderr}");
    assert_eq!(order.last(), Some(&"cargo-ship-deploy"), "{stderr}");

    let packages = publishable();
    assert_eq!(order.len(), packages.len(), "{stderr}");
    for (name, package) in &packages {
        let version = package["version"].as_str().unwrap();
        let crate_file = target
            .path()
            .join(format!("package/{name}-{version}.crate"));
        let files = entries(&crate_file);
        for needed in [
            "Cargo.toml",
            "README.md",
            "LICENSE-MIT",
            "LICENSE-APACHE",
            "src/lib.rs",
        ] {
            assert!(
                files.contains_key(needed),
                "{name}: no {needed} in {files:?}"
            );
        }
        // The licences are the texts, not links to them.
        assert!(
            files["LICENSE-APACHE"] > 9000,
            "{name}: {:?}",
            files["LICENSE-APACHE"]
        );
        assert!(read_entry(&crate_file, "LICENSE-MIT").contains("Permission is hereby granted"));
        // The README is the crate's own, naming it (the binary's is the project's).
        let readme = read_entry(&crate_file, "README.md");
        let title = if name == "cargo-ship-deploy" {
            "# cargo ship\n".to_owned()
        } else {
            format!("# {name}\n")
        };
        assert!(readme.starts_with(&title), "{name}: {readme:.80}");
        for (file, size) in &files {
            let top = file.split('/').next().unwrap();
            assert!(
                [
                    ".cargo_vcs_info.json",
                    "Cargo.lock",
                    "Cargo.toml",
                    "Cargo.toml.orig",
                    "README.md",
                    "LICENSE-MIT",
                    "LICENSE-APACHE",
                    "src",
                    "tests",
                    "examples",
                ]
                .contains(&top),
                "{name}: {file} should not ship"
            );
            assert!(
                !file.contains("fixtures") && !file.contains("snapshots"),
                "{name}: {file} should not ship"
            );
            assert!(*size < 128 * 1024, "{name}: {file} is {size} bytes");
        }
        let total: u64 = files.values().sum();
        assert!(total < 1024 * 1024, "{name}: {total} bytes unpacked");

        // Published dependencies are versions, never paths; dev-dependencies that could not
        // be published first (ship-core's on ship-layouts) are gone.
        let manifest = read_entry(&crate_file, "Cargo.toml");
        for line in manifest.lines() {
            assert!(
                !line.starts_with("path = ") || line.ends_with(".rs\""),
                "{name}: a path dependency in the published manifest: {line}"
            );
        }
        if name == "ship-core" {
            assert!(!manifest.contains("ship-layouts"), "{manifest}");
        }
    }
}

#[test]
fn the_readme_installs_the_package_that_has_the_cargo_ship_binary() {
    let packages = publishable();
    let with_binary: Vec<&String> = packages
        .iter()
        .filter(|(_, p)| {
            p["targets"].as_array().unwrap().iter().any(|t| {
                t["name"] == "cargo-ship" && t["kind"].as_array().unwrap().contains(&"bin".into())
            })
        })
        .map(|(name, _)| name)
        .collect();
    // `cargo-ship` on crates.io is another project: the package has a name of its own.
    assert_eq!(with_binary, ["cargo-ship-deploy"]);
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let install = readme
        .split("## Install\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README.md has an Install section");
    assert!(
        install.contains(&format!("cargo install --locked {}\n", with_binary[0])),
        "{install}"
    );
    assert!(
        install.contains("cargo install --locked --path cargo-ship"),
        "{install}"
    );
}
