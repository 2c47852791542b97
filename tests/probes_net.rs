//! Live tests of connect and bind beyond IPv4: IPv6 to a listener and refused, unix sockets by
//! path (to a listener and to a missing path) and abstract names. A forked child makes the
//! calls; the decoded addresses are checked.

use std::net::{Ipv6Addr, TcpListener};
use std::os::unix::net::UnixListener;

use sentinel::event::{Family, Payload, RawStr};
use sentinel_common::Kind;
use sentinel_e2e::*;

fn sockaddr_in6(port: u16) -> libc::sockaddr_in6 {
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as u16;
    sa.sin6_port = port.to_be();
    sa.sin6_addr.s6_addr = Ipv6Addr::LOCALHOST.octets();
    sa
}

/// A `sockaddr_un` for `name` (a leading NUL makes it abstract) and its length.
fn sockaddr_un(name: &[u8]) -> (libc::sockaddr_un, u32) {
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as u16;
    assert!(name.len() < sa.sun_path.len());
    for (d, s) in sa.sun_path.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // Abstract names are exactly as long as given; paths carry their NUL.
    let extra = if name.first() == Some(&0) { 0 } else { 1 };
    (sa, (2 + name.len() + extra) as u32)
}

/// socket + connect in the forked child: (fd, connect's result).
unsafe fn connect_to<T>(family: i32, sa: &T, len: u32) -> [i64; 2] {
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let r = libc::connect(fd, (sa as *const T).cast(), len);
        [fd as i64, ret_or_errno(r as i64)]
    }
}

fn connect_of(pid: u32) -> sentinel::event::Event {
    wait_for("connect", |e| e.pid == pid && e.kind() == Kind::Connect)
}

#[test]
fn connect_ipv6_to_listener_and_refused() {
    start_live();
    let l = TcpListener::bind("[::1]:0").expect("listening on ::1 (IPv6 on loopback)");
    let port = l.local_addr().unwrap().port();
    let sa = sockaddr_in6(port);
    let len = size_of::<libc::sockaddr_in6>() as u32;
    let (pid, [fd, r]) = in_child(|| unsafe { connect_to(libc::AF_INET6, &sa, len) });
    assert_eq!(r, 0);
    let ev = connect_of(pid);
    assert_eq!(ev.ret, 0);
    assert_eq!(
        ev.payload,
        Payload::Connect {
            fd: fd as i32,
            family: Family::Inet6,
            addr: Some(Ipv6Addr::LOCALHOST.into()),
            port: Some(port),
            unix_path: None
        }
    );
    drop(l);
    // Refused: a port bound but not listening, held for the whole check (a port merely freed
    // could be taken by a parallel test's listener).
    let (closed, _bound) = bound_not_listening();
    let sa = sockaddr_in6(closed);
    let (pid, [_, r]) = in_child(|| unsafe { connect_to(libc::AF_INET6, &sa, len) });
    assert_eq!(r, -(libc::ECONNREFUSED as i64));
    let ev = connect_of(pid);
    assert_eq!(ev.errno.as_deref(), Some("ECONNREFUSED"));
    assert!(matches!(
        ev.payload,
        Payload::Connect { family: Family::Inet6, port: Some(p), .. } if p == closed
    ));
}

/// A TCP socket bound to [::1] on a free port and not listening: connects to it are refused.
fn bound_not_listening() -> (u16, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    // SAFETY: a socket we own, bound with a correctly sized address, then asked its port.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut sa = sockaddr_in6(0);
        let mut len = size_of::<libc::sockaddr_in6>() as u32;
        assert_eq!(
            libc::bind(fd, (&sa as *const libc::sockaddr_in6).cast(), len),
            0
        );
        assert_eq!(
            libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_in6).cast(), &mut len),
            0
        );
        (u16::from_be(sa.sin6_port), owned)
    }
}

#[test]
fn connect_unix_by_path_missing_path_and_abstract() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("listener.sock");
    let _l = UnixListener::bind(&path).unwrap();
    let p = path.to_str().unwrap().to_string();
    let missing = format!("{p}.missing");
    // Unique per run: abstract names are shared by the whole network namespace.
    let abstract_name = format!(
        "\0sentinel-test-{}-{}",
        std::process::id(),
        dir.path().file_name().unwrap().to_str().unwrap()
    );
    let (ok, ok_len) = sockaddr_un(p.as_bytes());
    let (gone, gone_len) = sockaddr_un(missing.as_bytes());
    let (abs, abs_len) = sockaddr_un(abstract_name.as_bytes());
    let (pid, r) = in_child(|| unsafe {
        let a = connect_to(libc::AF_UNIX, &ok, ok_len);
        let b = connect_to(libc::AF_UNIX, &gone, gone_len);
        let c = connect_to(libc::AF_UNIX, &abs, abs_len);
        [a[0], a[1], b[1], c[1]]
    });
    assert_eq!(r[1], 0);
    assert_eq!(r[2], -(libc::ENOENT as i64));
    assert_eq!(
        r[3],
        -(libc::ECONNREFUSED as i64),
        "nobody listens on the name"
    );
    let unix = |ret: i64| {
        wait_for(&format!("unix connect returning {ret}"), move |e| {
            e.pid == pid && e.kind() == Kind::Connect && e.ret == ret
        })
    };
    assert_eq!(
        unix(0).payload,
        Payload::Connect {
            fd: r[0] as i32,
            family: Family::Unix,
            addr: None,
            port: None,
            unix_path: Some(RawStr::from(p.as_str()))
        }
    );
    let ev = unix(r[2]);
    assert_eq!(ev.errno.as_deref(), Some("ENOENT"));
    assert!(matches!(
        &ev.payload,
        Payload::Connect { unix_path: Some(u), .. } if *u == RawStr::from(missing.as_str())
    ));
    let ev = unix(r[3]);
    assert_eq!(ev.errno.as_deref(), Some("ECONNREFUSED"));
    let shown = format!("@{}", &abstract_name[1..]);
    assert!(
        matches!(&ev.payload, Payload::Connect { family: Family::Unix, unix_path: Some(u), .. } if *u == RawStr::from(shown.as_str())),
        "abstract names are shown with '@': {ev:?}"
    );
}

#[test]
fn bind_unix_path_and_eaddrinuse() {
    start_live();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bound.sock").to_str().unwrap().to_string();
    let (sa, len) = sockaddr_un(p.as_bytes());
    let (pid, r) = in_child(|| unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let a = ret_or_errno(libc::bind(fd, (&sa as *const libc::sockaddr_un).cast(), len) as i64);
        let fd2 = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let b = ret_or_errno(libc::bind(fd2, (&sa as *const libc::sockaddr_un).cast(), len) as i64);
        [fd as i64, a, fd2 as i64, b]
    });
    assert_eq!(r[1], 0);
    assert_eq!(r[3], -(libc::EADDRINUSE as i64), "the path exists now");
    let ev = wait_for("unix bind", |e| {
        e.pid == pid && e.kind() == Kind::Bind && e.ret == 0
    });
    assert_eq!(
        ev.payload,
        Payload::Bind {
            fd: r[0] as i32,
            family: Family::Unix,
            addr: None,
            port: None,
            unix_path: Some(RawStr::from(p.as_str()))
        }
    );
    let ev = wait_for("second unix bind", |e| {
        e.pid == pid && e.kind() == Kind::Bind && e.ret < 0
    });
    assert_eq!(ev.errno.as_deref(), Some("EADDRINUSE"));
    assert!(matches!(&ev.payload, Payload::Bind { fd, .. } if *fd == r[2] as i32));
}
