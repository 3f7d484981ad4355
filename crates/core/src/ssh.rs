//! How each host is reached over SSH, as data: host strings (`user@host:port`,
//! `ssh://user@host:port`, `[::1]:22`) parsed and checked, and the per-stage, per-role and
//! per-host `user`, `port`, `identity`, `jump` and `options` merged into one
//! [`Connection`] per host.
//!
//! Pure: nothing here runs ssh. ship-ssh turns a [`Connection`] into an ssh command line
//! (one builder for every ssh it starts).
//!
//! ```
//! use ship_core::Destination;
//! let d = Destination::parse("ssh://deploy@web1:2222").unwrap();
//! assert_eq!((d.user.as_deref(), d.host.as_str(), d.port), (Some("deploy"), "web1", Some(2222)));
//! assert_eq!(Destination::parse("deploy@web1:2222").unwrap(), d);
//! assert!(Destination::parse("deploy@web1:22x").unwrap_err().contains("port"));
//! ```

use crate::config::SshConfig;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// A parsed host string: what ssh is given as the host, and the user and port it names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct Destination {
    /// The user before `@`, if any.
    pub user: Option<String>,
    /// A name, an address or an alias of an ssh_config (an IPv6 address without brackets).
    pub host: String,
    /// The port after `:`, if any.
    pub port: Option<u16>,
}

/// What ssh itself refuses in a host name (OpenSSH's `valid_hostname`): refused at plan
/// instead of at connect time.
fn bad_char(c: char) -> bool {
    c.is_whitespace() || c.is_control() || "'`\"$\\;&<>|(){}#".contains(c)
}

/// Checks a user name: not empty, no whitespace, nothing ssh or a shell would read as
/// more than a name.
pub(crate) fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("the user is empty".to_owned());
    }
    if user.starts_with('-') {
        return Err(format!(
            "user {user:?} starts with `-`: ssh would read it as an option"
        ));
    }
    if user
        .chars()
        .any(|c| bad_char(c) || "@:/[]'\"\\%".contains(c))
    {
        return Err(format!(
            "user {user:?}: expected letters, digits, `.`, `_` or `-`"
        ));
    }
    Ok(())
}

fn check_port(text: &str, whole: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!(
            "host {whole:?}: port {text:?} is not a number from 1 to 65535"
        )),
    }
}

fn check_name(host: &str, whole: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(format!("host {whole:?}: the host name is empty"));
    }
    if host.starts_with('-') {
        return Err(format!(
            "host {whole:?} starts with `-`: ssh would read it as an option"
        ));
    }
    if host
        .chars()
        .any(|c| bad_char(c) || "@/[]'\"\\,".contains(c))
    {
        return Err(format!(
            "host {whole:?}: {host:?} is not a host name, an address or an ssh_config alias"
        ));
    }
    Ok(())
}

impl Destination {
    /// Parses `host`, `user@host`, `host:port`, `user@host:port`, `ssh://user@host:port`,
    /// `[2001:db8::1]:2222` (an IPv6 address with a port goes in brackets; a bare one has
    /// no port). Every error names the string and what is wrong with it.
    pub fn parse(s: &str) -> Result<Destination, String> {
        if s.is_empty() {
            return Err("a host name is empty".to_owned());
        }
        if s.starts_with('-') {
            return Err(format!(
                "host {s:?} starts with `-`: ssh would read it as an option"
            ));
        }
        if s.chars().any(bad_char) {
            return Err(format!(
                "host {s:?} contains whitespace: expected an OpenSSH destination such as user@host:port or an alias from ~/.ssh/config"
            ));
        }
        let rest = match s.strip_prefix("ssh://") {
            Some(r) => r.strip_suffix('/').unwrap_or(r),
            None if s.contains("://") => {
                return Err(format!(
                    "host {s:?}: only ssh:// URLs are destinations (ssh://user@host:port)"
                ));
            }
            None => s,
        };
        if rest.contains('/') {
            return Err(format!(
                "host {s:?}: a destination has no path (expected user@host:port)"
            ));
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => {
                check_user(u).map_err(|m| format!("host {s:?}: {m}"))?;
                (Some(u.to_owned()), h)
            }
            None => (None, rest),
        };
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            let Some((addr, after)) = inner.split_once(']') else {
                return Err(format!("host {s:?}: `[` without its `]`"));
            };
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!(
                    "host {s:?}: {addr:?} in brackets is not an IPv6 address"
                ));
            }
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(check_port(p, s)?),
                    None => return Err(format!("host {s:?}: expected `:port` after `]`")),
                },
            };
            (addr.to_owned(), port)
        } else if hostport.matches(':').count() > 1 {
            if hostport.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!(
                    "host {s:?}: {hostport:?} is not an IPv6 address (with a port, write [address]:port)"
                ));
            }
            (hostport.to_owned(), None)
        } else if let Some((h, p)) = hostport.split_once(':') {
            (h.to_owned(), Some(check_port(p, s)?))
        } else {
            (hostport.to_owned(), None)
        };
        if !host.contains(':') {
            check_name(&host, s)?;
        }
        Ok(Destination { user, host, port })
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        match (self.host.contains(':'), self.port) {
            (true, Some(p)) => write!(f, "[{}]:{p}", self.host),
            (false, Some(p)) => write!(f, "{}:{p}", self.host),
            (_, None) => f.write_str(&self.host),
        }
    }
}

impl Serialize for Destination {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How one host is reached: what ssh is given, beside the ssh_config that applies.
///
/// A field left `None` (or empty) is not passed to ssh: the ssh_config decides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// What ssh is given as the host.
    pub host: String,
    /// `-l`: the login user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `-p`: the port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `-i`: the only private key offered (with `IdentitiesOnly=yes`), as written in the
    /// configuration (a relative path is the project's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The jump hosts (bastions) in order, the first reached directly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jump: Vec<Destination>,
    /// More `-o Key=Value` options, by key.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

impl Connection {
    /// The connection to a jump host: its own user and port; the ssh_config does the rest.
    pub fn to_jump(jump: &Destination) -> Connection {
        Connection {
            host: jump.host.clone(),
            user: jump.user.clone(),
            port: jump.port,
            ..Connection::default()
        }
    }

    /// A short description for the plan: `deploy@web1:2222 via bastion` (never a secret:
    /// options are named, not shown).
    pub fn describe(&self) -> String {
        let mut text = Destination {
            user: self.user.clone(),
            host: self.host.clone(),
            port: self.port,
        }
        .to_string();
        if let Some(i) = &self.identity {
            text.push_str(&format!(" key {i}"));
        }
        if !self.jump.is_empty() {
            let hops: Vec<String> = self.jump.iter().map(ToString::to_string).collect();
            text.push_str(&format!(" via {}", hops.join(" > ")));
        }
        if !self.options.is_empty() {
            let keys: Vec<&str> = self.options.keys().map(String::as_str).collect();
            text.push_str(&format!(" -o {}", keys.join(",")));
        }
        text
    }
}

/// Options cargo ship sets itself: they hold its connection together.
const MANAGED: [&str; 4] = ["controlmaster", "controlpath", "controlpersist", "include"];

/// Checks one `[ssh]` table (the stage's, a role's, a host's or an inventory's); the
/// message names the key at fault.
pub(crate) fn check_settings(cfg: &SshConfig) -> Result<(), (&'static str, String)> {
    if let Some(u) = &cfg.user {
        check_user(u).map_err(|m| ("user", m))?;
    }
    if cfg.port == Some(0) {
        return Err((
            "port",
            "expected a port from 1 to 65535, found 0".to_owned(),
        ));
    }
    if let Some(i) = &cfg.identity
        && (i.is_empty() || i.chars().any(char::is_control))
    {
        return Err((
            "identity",
            format!("{i:?}: expected the path of a private key"),
        ));
    }
    for j in cfg.jump.iter().flatten() {
        Destination::parse(j).map_err(|m| ("jump", m))?;
    }
    for (k, v) in &cfg.options {
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err((
                "options",
                format!("{k:?}: expected an ssh_config keyword such as ServerAliveInterval"),
            ));
        }
        if MANAGED.contains(&k.to_ascii_lowercase().as_str()) {
            return Err((
                "options",
                format!(
                    "{k}: cargo ship sets it itself (its connections are multiplexed; \
                     `keep_connections` keeps them open)"
                ),
            ));
        }
        if v.is_empty() || v.chars().any(char::is_control) {
            return Err(("options", format!("{k} = {v:?}: expected a one-line value")));
        }
    }
    Ok(())
}

/// Lays `over` on top of `base`: each field `over` sets replaces `base`'s; options merge
/// key by key.
pub(crate) fn layer(base: &SshConfig, over: &SshConfig) -> SshConfig {
    let mut out = base.clone();
    if over.user.is_some() {
        out.user.clone_from(&over.user);
    }
    if over.port.is_some() {
        out.port = over.port;
    }
    if over.identity.is_some() {
        out.identity.clone_from(&over.identity);
    }
    if over.jump.is_some() {
        out.jump.clone_from(&over.jump);
    }
    for (k, v) in &over.options {
        out.options.retain(|old, _| !old.eq_ignore_ascii_case(k));
        out.options.insert(k.clone(), v.clone());
    }
    out
}

/// The settings of several roles of one host, merged; two roles that set one key to
/// different values are an error naming both (`Err((key, message))`).
pub(crate) fn merge_roles<'a>(
    roles: impl IntoIterator<Item = (&'a str, &'a SshConfig)>,
) -> Result<SshConfig, (&'static str, String)> {
    let mut out = SshConfig::default();
    let mut from: BTreeMap<&'static str, &str> = BTreeMap::new();
    for (role, cfg) in roles {
        let mut clash = |key: &'static str, same: bool, set: bool| {
            if !set {
                return Ok(());
            }
            match from.get(key) {
                Some(other) if !same => Err((
                    key,
                    format!("roles `{other}` and `{role}` set different `{key}` for one host"),
                )),
                Some(_) => Ok(()),
                None => {
                    from.insert(key, role);
                    Ok(())
                }
            }
        };
        clash(
            "user",
            out.user.is_none() || out.user == cfg.user,
            cfg.user.is_some(),
        )?;
        clash(
            "port",
            out.port.is_none() || out.port == cfg.port,
            cfg.port.is_some(),
        )?;
        clash(
            "identity",
            out.identity.is_none() || out.identity == cfg.identity,
            cfg.identity.is_some(),
        )?;
        clash(
            "jump",
            out.jump.is_none() || out.jump == cfg.jump,
            cfg.jump.is_some(),
        )?;
        for (k, v) in &cfg.options {
            if let Some(old) = out.options.get(k)
                && old != v
            {
                return Err((
                    "options",
                    format!("two roles of one host (the second `{role}`) set `{k}` differently"),
                ));
            }
        }
        out = layer(&out, cfg);
    }
    Ok(out)
}

/// The host `name` (a host string as listed) reached with `cfg` (the stage's, its roles'
/// and its own settings, merged): its [`Connection`], or `None` when ssh is given the
/// name as it is and nothing else. The user and port of the host string are the host's
/// own: a per-host setting that says otherwise is an error.
pub(crate) fn connection(name: &str, cfg: &SshConfig) -> Result<Option<Connection>, String> {
    let dest = Destination::parse(name)?;
    if let (Some(a), Some(b)) = (&dest.user, &cfg.user)
        && a != b
    {
        return Err(format!(
            "host {name:?} names user `{a}`, and `user` for it is `{b}`: keep one"
        ));
    }
    if let (Some(a), Some(b)) = (dest.port, cfg.port)
        && a != b
    {
        return Err(format!(
            "host {name:?} names port {a}, and `port` for it is {b}: keep one"
        ));
    }
    let jump = cfg
        .jump
        .iter()
        .flatten()
        .map(|j| Destination::parse(j))
        .collect::<Result<Vec<_>, _>>()?;
    let has_proxy = cfg
        .options
        .keys()
        .any(|k| k.eq_ignore_ascii_case("proxyjump") || k.eq_ignore_ascii_case("proxycommand"));
    if has_proxy && !jump.is_empty() {
        return Err(format!(
            "host {name:?}: `jump` and a ProxyJump/ProxyCommand option both say how to reach it: keep one"
        ));
    }
    let conn = Connection {
        host: dest.host.clone(),
        user: dest.user.or_else(|| cfg.user.clone()),
        port: dest.port.or(cfg.port),
        identity: cfg.identity.clone(),
        jump,
        options: cfg.options.clone(),
    };
    if conn
        == (Connection {
            host: name.to_owned(),
            ..Connection::default()
        })
    {
        Ok(None)
    } else {
        Ok(Some(conn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<(Option<String>, String, Option<u16>), String> {
        Destination::parse(s).map(|d| (d.user, d.host, d.port))
    }

    #[test]
    fn host_strings_parse() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(p("web1").unwrap(), (None, "web1".into(), None));
        assert_eq!(
            p("deploy@web1").unwrap(),
            (some("deploy"), "web1".into(), None)
        );
        assert_eq!(
            p("deploy@web1:2222").unwrap(),
            (some("deploy"), "web1".into(), Some(2222))
        );
        assert_eq!(
            p("ssh://deploy@web1:2222").unwrap(),
            (some("deploy"), "web1".into(), Some(2222))
        );
        assert_eq!(p("ssh://web1/").unwrap(), (None, "web1".into(), None));
        assert_eq!(
            p("[2001:db8::1]:22").unwrap(),
            (None, "2001:db8::1".into(), Some(22))
        );
        assert_eq!(
            p("2001:db8::1").unwrap(),
            (None, "2001:db8::1".into(), None)
        );
        assert_eq!(
            Destination::parse("u@[::1]:2").unwrap().to_string(),
            "u@[::1]:2"
        );
    }

    #[test]
    fn bad_host_strings_say_what_is_wrong() {
        for (s, why) in [
            ("deploy@web1:22x", "port \"22x\""),
            ("web1:0", "port \"0\""),
            ("web1:70000", "port \"70000\""),
            ("web1:", "port \"\""),
            ("@web1", "the user is empty"),
            ("deploy@", "the host name is empty"),
            ("ssh://deploy@web1:22/srv", "no path"),
            ("http://web1", "only ssh://"),
            ("[::1", "without its `]`"),
            ("[web1]:22", "not an IPv6"),
            ("a:b:c", "not an IPv6"),
            ("-oProxyCommand=x", "starts with `-`"),
            ("-x@web1", "starts with `-`"),
            ("web 1", "whitespace"),
            ("", "empty"),
        ] {
            let e = p(s).unwrap_err();
            assert!(e.contains(why), "{s:?}: {e}");
        }
    }

    #[test]
    fn connection_merges_and_refuses_contradictions() {
        let cfg = SshConfig {
            user: Some("deploy".into()),
            jump: Some(vec!["bastion:2200".into()]),
            ..SshConfig::default()
        };
        let c = connection("web1:2222", &cfg).unwrap().unwrap();
        assert_eq!(c.describe(), "deploy@web1:2222 via bastion:2200");
        assert_eq!(connection("web1", &SshConfig::default()).unwrap(), None);
        assert!(
            connection("root@web1", &cfg)
                .unwrap_err()
                .contains("keep one")
        );
        let both = SshConfig {
            options: BTreeMap::from([("ProxyJump".into(), "x".into())]),
            ..cfg.clone()
        };
        assert!(connection("web1", &both).unwrap_err().contains("ProxyJump"));
        let bad = SshConfig {
            options: BTreeMap::from([("ControlPersist".into(), "yes".into())]),
            ..SshConfig::default()
        };
        assert_eq!(check_settings(&bad).unwrap_err().0, "options");
        let web = SshConfig {
            user: Some("a".into()),
            ..SshConfig::default()
        };
        let db = SshConfig {
            user: Some("b".into()),
            ..SshConfig::default()
        };
        let e = merge_roles([("db", &db), ("web", &web)]).unwrap_err();
        assert!(e.1.contains("`db` and `web`"), "{e:?}");
        assert_eq!(
            merge_roles([("db", &db), ("web", &db)])
                .unwrap()
                .user
                .as_deref(),
            Some("b")
        );
    }
}
