//! `converge model explore` serves stateright's Explorer on loopback (spec MODEL-8): the test starts it for
//! `sessions` on a free port, fetches the UI page and the checker's status over plain HTTP, and
//! stops it. Also: an unknown model and a busy or non-loopback address are clear errors, not
//! panics. Every wait is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long the server gets to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one HTTP exchange may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A loopback address with a port that was free a moment ago.
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("the listener's address")
}

/// Kills the child when dropped, so that a failed assertion does not leave a server running.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        // Bounded: a killed process is reaped promptly; give up after a few seconds rather
        // than hang the test run.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn explore(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_converge"));
    cmd.args(["model", "explore"]).args(args);
    cmd
}

/// One `GET path` with `Connection: close`; the whole response as text.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// Starts the explorer for `sessions` on a free port and waits until *it* answers: a port that
/// accepts connections is not enough, because between `free_addr` releasing the port and the
/// explorer binding it another process (the suite's other tests bind ephemeral ports too) may
/// take it, and then the explorer exits while the other process answers. So the server counts as
/// up only when its own status page answers; if the child exits first, another port is tried.
fn start() -> (Server, SocketAddr) {
    for _attempt in 0..5 {
        let addr = free_addr();
        let child = explore(&["sessions", "--addr", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start converge");
        let mut server = Server(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.0.try_wait() {
                break; // It exited: most likely the port was taken; try another.
            }
            let ours = get(addr, "/.status").is_ok_and(|status| {
                status.starts_with("HTTP/1.1 200") && status.contains("\"unique_state_count\"")
            });
            if ours {
                return (server, addr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("the explorer never answered on a free port");
}

#[test]
fn explore_serves_the_stateright_explorer_for_sessions_on_loopback() {
    let (server, addr) = start();
    let page = get(addr, "/").expect("GET /");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<html"), "not the explorer's page: {page}");
    let status = get(addr, "/.status").expect("GET /.status");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // The status is the checker's: its properties are the sessions model's.
    assert!(status.contains("\"unique_state_count\""), "{status}");
    assert!(status.contains("read-your-writes"), "{status}");
    // The initial states, as JSON (a replica's state is long: show only the start).
    let states = get(addr, "/.states").expect("GET /.states");
    let head: String = states.chars().take(300).collect();
    assert!(states.starts_with("HTTP/1.1 200"), "{head}");
    assert!(states.contains("[{\"state\":"), "{head}");
    assert!(states.contains("Replica {"), "{head}");
    drop(server);
    assert!(
        get(addr, "/").is_err(),
        "the explorer still answers after it was killed"
    );
}

/// Waits, bounded, for `server` to exit; its exit code.
fn exit_code(server: &mut Server) -> Option<i32> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.0.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the explorer did not stop");
}

#[test]
fn explore_stops_on_ctrl_c_and_sigterm() {
    for signal in ["-INT", "-TERM"] {
        let (mut server, addr) = start();
        let pid = server.0.id().to_string();
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {signal} {pid}");
        assert_eq!(exit_code(&mut server), Some(130), "{signal}");
        assert!(get(addr, "/").is_err(), "still answering after {signal}");
    }
}

/// Runs a command that must fail fast, with a bounded wait: a regression that serves instead
/// of failing must not hang the suite.
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start converge");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("converge model explore did not exit on an error");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn explore_refuses_an_unknown_model_a_busy_address_and_a_public_one() {
    let out = run(&mut explore(&["no-such-model", "--addr", "127.0.0.1:1"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model named"));

    let busy = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let addr = busy.local_addr().expect("address").to_string();
    let out = run(&mut explore(&["sessions", "--addr", &addr]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(busy);

    let out = run(&mut explore(&["sessions", "--addr", "0.0.0.0:3000"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
