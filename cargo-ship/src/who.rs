//! Who does what, and when: the deployer's `user@machine`, the time now, and the age of a
//! lock, for lock texts, records and webhooks. Its own module, so that the commands and the
//! webhook both use it without importing each other.

use crate::Context;

/// Who deploys: `user@machine`.
pub(crate) fn deployer(cx: &Context) -> String {
    let user = cx
        .var("USER")
        .or_else(|| cx.var("LOGNAME"))
        .map(str::to_owned)
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".to_owned());
    let machine = ship_ssh::hostname().unwrap_or_else(|| "unknown".to_owned());
    format!("{user}@{machine}")
}

/// The name of this process's user in /etc/passwd (when USER is not set, as under cron or CI).
fn user_from_passwd() -> Option<String> {
    let uid = ship_ssh::uid().to_string();
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut parts = l.split(':');
            let name = parts.next()?;
            (parts.nth(1)? == uid).then(|| name.to_owned())
        })
}

/// `text` with the age of the lock it names: after "since <RFC 3339 time>", "held for 3h 12m".
pub(crate) fn with_lock_age(text: &str) -> String {
    let Some(at) = text.find(" since ") else {
        return text.to_owned();
    };
    let rest = &text[at + 7..];
    let stamp: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    let Ok(then) = stamp.parse::<jiff::Timestamp>() else {
        return text.to_owned();
    };
    let secs = (jiff::Timestamp::now().as_second() - then.as_second()).max(0);
    let age = match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    };
    let end = at + 7 + stamp.len();
    format!("{} (held for {age}){}", &text[..end], &text[end..])
}

/// Now, RFC 3339 UTC, to the second.
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::with_lock_age;

    #[test]
    fn lock_age_follows_the_time_it_names() {
        let now = jiff::Timestamp::now();
        let an_hour_ago = jiff::Timestamp::from_second(now.as_second() - 3700).unwrap();
        let text = format!(
            "locked: carol@ci since {} (demo)",
            an_hour_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
        );
        let aged = with_lock_age(&text);
        assert!(aged.contains("Z (held for 1h 1m) (demo)"), "{aged}");
        assert_eq!(with_lock_age("not locked"), "not locked");
        assert_eq!(with_lock_age("x since yesterday"), "x since yesterday");
    }
}
