//! Dependency trees reused across releases: `.ship/<kind>/<key>` on each host, linked into
//! every release that needs it (DESIGN.md, On each host). The adapters (ship-python's
//! virtualenvs, ship-node's node_modules) build their task scripts from these two pieces,
//! so that reuse, the completion marker, the install log and pruning work the same way.

use crate::shell::quote;

/// One kind of reused tree.
#[derive(Clone, Copy, Debug)]
pub struct Trees<'a> {
    /// The directory under `.ship/` holding the trees: `venvs`, `node_modules`.
    pub kind: &'a str,
    /// The prefix of the lines the scripts print: `ship-python`.
    pub tag: &'a str,
    /// Where the tree is linked in each release (relative to the release).
    pub link: &'a str,
}

impl Trees<'_> {
    /// The script that links `.ship/<kind>/<name>` into the release, making it first with
    /// `make` unless the host already has it complete.
    ///
    /// `name` is a shell word (it may use variables set earlier, e.g. `"$key-py$ver"`);
    /// `make` is shell that fills `"$dir"` and fails on error. A tree is complete once
    /// `"$dir/.ship-complete"` exists (written last), so a tree left half-made by a killed
    /// deploy is made again. Each make appends `<release> <name>` to
    /// `.ship/<kind>/installs.log`: a deploy that reused its tree adds no line.
    ///
    /// ```
    /// use ship_core::Trees;
    /// let t = Trees { kind: "venvs", tag: "ship-python", link: "venv" };
    /// let s = t.reuse_script("\"$key\"", "python3 -m venv \"$dir\"");
    /// assert!(s.contains(r#"dir="$trees"/"$key""#));
    /// assert!(s.contains("ln -s \"$dir\" venv"));
    /// ```
    pub fn reuse_script(&self, name: &str, make: &str) -> String {
        let make: String = make
            .lines()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("  {l}\n")
                }
            })
            .collect();
        // The link is placed from the release (the task's directory): never through a
        // directory the artifact made a symlink.
        let guard = crate::script::refuse_links_on_the_way("", &[self.link], "link the tree");
        format!(
            r#"{guard}trees="$SHIP_DEPLOY_TO/.ship/"{kind}
dir="$trees"/{name}
if [ -f "$dir/.ship-complete" ]; then
  echo "{tag}: reusing $dir"
else
  echo "{tag}: making $dir"
  rm -rf "$dir"
  mkdir -p "$trees"
{make}  printf '%s %s\n' "$SHIP_RELEASE" "${{dir##*/}}" >> "$trees/installs.log"
  printf '%s\n' "$SHIP_RELEASE" > "$dir/.ship-complete"
fi
rm -rf {link}
mkdir -p "$(dirname {link})"
ln -s "$dir" {link}"#,
            kind = quote(self.kind),
            tag = self.tag,
            link = quote(self.link),
        )
    }

    /// The script that removes the trees neither `current` nor any directory in
    /// `releases/` links to (run after cleanup).
    ///
    /// ```
    /// use ship_core::Trees;
    /// let t = Trees { kind: "node_modules", tag: "ship-node", link: "node_modules" };
    /// assert!(t.prune_script().contains("readlink"));
    /// ```
    pub fn prune_script(&self) -> String {
        format!(
            r#"trees="$SHIP_DEPLOY_TO/.ship/"{kind}
[ -d "$trees" ] || exit 0
keep=" "
for r in "$SHIP_DEPLOY_TO"/releases/* "$SHIP_DEPLOY_TO/current"; do
  t=$(readlink "$r"/{link} 2>/dev/null) || continue
  keep="$keep${{t##*/}} "
done
for d in "$trees"/*/; do
  [ -d "$d" ] || continue
  d=${{d%/}}
  case "$keep" in
    *" ${{d##*/}} "*) ;;
    *) echo "{tag}: removing ${{d##*/}}, no kept release uses it"; rm -rf "$d" ;;
  esac
done"#,
            kind = quote(self.kind),
            tag = self.tag,
            link = quote(self.link),
        )
    }
}
