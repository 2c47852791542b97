//! Decoding the process and network kinds added for detection coverage (prctl, socket, bind,
//! listen), the exec environment, and the examples of docs/events.md.

use super::tests::{dec, nr, record};
use super::tests_kinds::round_trips;
use super::*;
use sentinel_common::flags;

#[test]
fn prctl_socket_bind_listen() {
    let e = dec(&record(
        Kind::Prctl,
        nr("prctl"),
        0,
        [15, 0x1000, 0, 0, 0, 0],
        &[b"[kworker/0:1]"],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Prctl {
            option: 15,
            name: "[kworker/0:1]".into()
        }
    );
    round_trips(&e);

    let e = dec(&record(
        Kind::Socket,
        nr("socket"),
        3,
        [17, 3, 0x0300, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Socket {
            family: 17,
            sock_type: 3,
            protocol: 0x0300,
            family_name: "AF_PACKET".into(),
            type_name: "SOCK_RAW".into(),
            protocol_name: "ETH_P_ALL".into(),
        }
    );
    round_trips(&e);

    let sa4 = [2u8, 0, 0x11, 0x5c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let e = dec(&record(
        Kind::Bind,
        nr("bind"),
        0,
        [3, 0, 16, 0, 0, 0],
        &[],
        &[&sa4],
    ));
    assert_eq!(
        e.payload,
        Payload::Bind {
            fd: 3,
            family: Family::Inet,
            addr: Some("0.0.0.0".parse().unwrap()),
            port: Some(4444),
            unix_path: None
        }
    );
    assert_eq!(socket_address(&e.payload).as_deref(), Some("0.0.0.0:4444"));
    round_trips(&e);
    // A short address is "other", not a panic.
    let e = dec(&record(
        Kind::Bind,
        nr("bind"),
        -(libc::EINVAL as i64),
        [3, 0, 3, 0, 0, 0],
        &[],
        &[&[2, 0, 1]],
    ));
    assert!(matches!(
        e.payload,
        Payload::Bind {
            family: Family::Other,
            addr: None,
            ..
        }
    ));

    let e = dec(&record(
        Kind::Listen,
        nr("listen"),
        0,
        [3, 128, 0, 0, 0, 0],
        &[],
        &[],
    ));
    assert_eq!(
        e.payload,
        Payload::Listen {
            fd: 3,
            backlog: 128
        }
    );
    round_trips(&e);
}

#[test]
fn exec_environment_pairs_and_truncation() {
    let mut r = record(
        Kind::Exec,
        nr("execve"),
        0,
        [1, 0, 0, 0, 0, 0],
        &[
            b"/bin/sh",
            b"sh\0",
            b"LD_PRELOAD=/tmp/x.so\0HISTFILE=/dev/null\0ENV\0BASH_ENV=caf\xff=x\0PROMPT_COMMAND=cut",
        ],
        &[],
    );
    r[56] = flags::ENV_TRUNCATED as u8;
    let e = dec(&r);
    let Payload::Exec {
        env, env_truncated, ..
    } = &e.payload
    else {
        panic!()
    };
    let pairs: Vec<(&[u8], &[u8])> = env
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            (&b"LD_PRELOAD"[..], &b"/tmp/x.so"[..]),
            (b"HISTFILE", b"/dev/null"),
            (b"ENV", b""),
            (b"BASH_ENV", b"caf\xff=x"),
            (b"PROMPT_COMMAND", b"cut"),
        ]
    );
    assert!(env_truncated);
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["env"][0][0], "LD_PRELOAD");
    assert_eq!(json["env"][3][1], "caf\\xff=x");
    assert_eq!(json["env_truncated"], true);
    round_trips(&e);

    // No environment kept: the fields are absent from JSON and default when read back.
    let e = dec(&record(
        Kind::Exec,
        nr("execve"),
        0,
        [1, 0, 0, 0, 0, 0],
        &[b"/bin/true", b"true\0"],
        &[],
    ));
    let json = serde_json::to_value(&e).unwrap();
    assert!(json.get("env").is_none() && json.get("env_truncated").is_none());
    round_trips(&e);
}

#[test]
fn examples_in_docs_events_md_parse() {
    let doc = include_str!("../../../docs/events.md");
    let mut n = 0;
    for line in doc.lines().filter(|l| l.starts_with(r#"{"type":"event""#)) {
        let e: Event = serde_json::from_str(line).unwrap_or_else(|err| panic!("{line}: {err}"));
        // Written back, the same fields come out.
        let mut want: serde_json::Value = serde_json::from_str(line).unwrap();
        want.as_object_mut().unwrap().remove("type");
        assert_eq!(serde_json::to_value(&e).unwrap(), want, "{line}");
        n += 1;
    }
    assert!(n >= 4, "the examples are there");
}
