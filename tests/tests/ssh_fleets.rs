//! SSH as fleets use it (issue 19), on real sshd hosts: a bastion in front of the hosts,
//! hosts on two ports and two users, host strings with a user and a port, and bad ones
//! refused at `plan` naming their key.

use ship_tests::{Fixture, Fleet, TestUser, ok};

/// The fleet's host key, trusted for `host` on `port` too.
fn trust_port(fleet: &Fleet, ip: std::net::Ipv4Addr, port: u16) {
    let known = fleet.dir().join("known_hosts");
    let text = std::fs::read_to_string(&known).unwrap();
    let key = text
        .lines()
        .next()
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1
        .to_owned();
    std::fs::write(&known, format!("{text}[{ip}]:{port} {key}\n")).unwrap();
}

/// Lets the test's users read the fleet's authorized key (sshd reads it as the user).
fn let_users_in(fleet: &Fleet) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fleet.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
}

fn project(fleet: &Fleet, stage: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\n\n{stage}",
        fleet.ssh_config().display(),
    );
    Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)])
}

/// h1 is a bastion (its sshd logs each forwarding, DEBUG1) in front of h2 (port 2222, root,
/// named `root@h2:2222`) and h3 (port 2200 only through Ship.toml, another user, from its
/// role's settings): the deploy reaches both through it, with one login to the bastion.
#[test]
fn a_deploy_goes_through_a_bastion_to_hosts_on_two_ports_and_users() {
    let fleet = Fleet::start_configured(3, &|name, ip| match name {
        "h1" => "LogLevel DEBUG1\n".to_owned(),
        "h3" => format!("ListenAddress {ip}:2200\n"),
        _ => String::new(),
    });
    let (ip2, ip3) = (fleet.hosts[1].ip, fleet.hosts[2].ip);
    trust_port(&fleet, ip3, 2200);
    let user = TestUser::create("deploy", None);
    let_users_in(&fleet);
    fleet.sh(
        "h3",
        &format!("mkdir -p /srv/app && chown {} /srv/app", user.name),
    );
    let f = project(
        &fleet,
        &format!(
            "[staging]\nhosts = [\"root@h2:2222\"]\n[staging.ssh]\njump = \"h1\"\n\
             [staging.roles.web]\nhosts = [\"h3\"]\n[staging.roles.web.ssh]\nuser = \"{}\"\n\
             [staging.ssh_hosts.h3]\nport = 2200\n",
            user.name
        ),
    );
    // `plan` reads the hosts through the bastion too: one login to it, as the deploy.
    let plan = f.ship(&["plan", "staging"]);
    ok(&plan);
    let out = f.ship(&["apply", "staging"]);
    ok(&out);
    for h in ["h2", "h3"] {
        assert_eq!(fleet.read(h, "/srv/app/current/index.html"), "v1\n", "{h}");
    }
    assert_eq!(
        fleet
            .sh("h3", "stat -c %U /srv/app/current/index.html")
            .trim(),
        user.name
    );
    assert!(
        !fleet.try_sh("h1", "test -e /srv/app").0,
        "the bastion got a deploy"
    );
    let log = std::fs::read_to_string(fleet.dir().join("sshd_h1.log")).unwrap();
    for target in [
        format!("target {ip2} port 2222"),
        format!("target {ip3} port 2200"),
    ] {
        assert!(
            fleet.log_lines("h1", "direct_tcpip") > 0 && log.contains(&target),
            "the bastion's log shows no forwarding to {target}:\n{log}"
        );
    }
    assert_eq!(
        fleet.log_lines("h1", "Accepted publickey for root"),
        1,
        "one login to the bastion for both hosts:\n{log}"
    );
    assert_eq!(
        fleet.log_lines("h3", &format!("Accepted publickey for {}", user.name)),
        1
    );
    assert_eq!(
        fleet.log_lines("h3", &format!("on {ip3} port 2200 rdomain")),
        1
    );
}

/// Two hops: h3 is reached through h1, then h2; each bastion's log shows the next hop.
#[test]
fn a_jump_of_several_hops_goes_through_each_in_turn() {
    let fleet = Fleet::start_configured(3, &|name, _| match name {
        "h1" | "h2" => "LogLevel DEBUG1\n".to_owned(),
        _ => String::new(),
    });
    let (ip2, ip3) = (fleet.hosts[1].ip, fleet.hosts[2].ip);
    let f = project(
        &fleet,
        "[staging]\nhosts = [\"h3\"]\n[staging.ssh]\njump = [\"h1\", \"root@h2:2222\"]\n",
    );
    let out = f.ship(&["run", "staging", "--", "echo", "reached"]);
    ok(&out);
    assert!(out.stdout.contains("reached"), "{}", out.stdout);
    assert!(fleet.log_lines("h1", &format!("target {ip2} port 2222")) > 0);
    assert!(fleet.log_lines("h2", &format!("target {ip3} port 2222")) > 0);
    assert_eq!(fleet.log_lines("h3", "Accepted publickey"), 1);
}

/// `deploy@web1:2222`-like strings whose parts are wrong are refused by `plan`, the key
/// and the string named; so are SSH settings that cannot work.
#[test]
fn bad_host_strings_and_ssh_settings_are_refused_at_plan() {
    let fleet = Fleet::start(1);
    for (stage, key, why) in [
        (
            "[staging]\nhosts = [\"deploy@h1:22x\"]\n",
            "staging.hosts",
            "port \"22x\"",
        ),
        (
            "[staging]\nhosts = [\"ssh://deploy@h1:70000\"]\n",
            "staging.hosts",
            "70000",
        ),
        (
            "[staging]\nhosts = [\"@h1\"]\n",
            "staging.hosts",
            "user is empty",
        ),
        (
            "[staging.roles.web]\nhosts = [\"h1:0\"]\n",
            "staging.roles.web.hosts",
            "port \"0\"",
        ),
        (
            "[staging]\nhosts = [\"h1\"]\n[staging.ssh]\njump = [\"bastion:x\"]\n",
            "staging.ssh.jump",
            "bastion:x",
        ),
        (
            "[staging]\nhosts = [\"h1\"]\n[staging.ssh]\noptions = { ControlPersist = \"yes\" }\n",
            "staging.ssh.options",
            "cargo ship sets it",
        ),
        (
            "[staging]\nhosts = [\"h1\"]\n[staging.ssh_hosts.h9]\nport = 22\n",
            "staging.ssh_hosts.h9",
            "not a host of this stage",
        ),
        (
            "[staging]\nhosts = [\"deploy@h1\"]\n[staging.ssh_hosts.\"deploy@h1\"]\nuser = \"root\"\n",
            "staging.ssh_hosts",
            "keep one",
        ),
        (
            "[staging]\nhosts = [\"h1\"]\n[staging.ssh]\nport = 70000\n",
            "staging.ssh.port",
            "",
        ),
    ] {
        let f = project(&fleet, stage);
        let out = f.ship(&["plan", "staging"]);
        assert_ne!(out.code, 0, "{stage}: plan passed:\n{}", out.stdout);
        assert!(
            out.stderr.contains(key) && out.stderr.contains(why),
            "{stage}: expected {key} and {why:?} in:\n{}",
            out.stderr
        );
    }
    // An inventory's host with bad ssh settings names the host and the key.
    let f = project(
        &fleet,
        "[staging]\ninventory = { command = \"echo '{\\\"hosts\\\": [{\\\"name\\\": \\\"h1\\\", \\\"ssh\\\": {\\\"user\\\": \\\"-x\\\"}}]}'\" }\n",
    );
    let out = f.ship(&["plan", "staging"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("ssh.user") && out.stderr.contains("\"h1\""),
        "{}",
        out.stderr
    );
}

/// A dynamic inventory's per-host `ssh` (user, port) reaches the host as Ship.toml's would.
#[test]
fn an_inventory_host_brings_its_own_user_and_port() {
    let fleet = Fleet::start_configured(1, &|_, ip| format!("ListenAddress {ip}:2200\n"));
    trust_port(&fleet, fleet.hosts[0].ip, 2200);
    let user = TestUser::create("inv", None);
    let_users_in(&fleet);
    let f = project(
        &fleet,
        &format!(
            "[staging]\ninventory = {{ command = \"echo '{{\\\"hosts\\\": [{{\\\"name\\\": \\\"h1\\\", \\\"ssh\\\": {{\\\"user\\\": \\\"{}\\\", \\\"port\\\": 2200}}}}]}}'\" }}\n",
            user.name
        ),
    );
    let out = f.ship(&["run", "staging", "--", "id", "-un"]);
    ok(&out);
    assert!(out.stdout.contains(&user.name), "{}", out.stdout);
    assert_eq!(
        fleet.log_lines("h1", &format!("Accepted publickey for {}", user.name)),
        1
    );
    assert_eq!(fleet.log_lines("h1", "port 2200 rdomain"), 1);
}
