//! End-to-end: the built `srbd` binary against Debian's real `pactl`
//! (libpulse 16.1). `pactl` must be installed (`scripts/test-srbd.sh`
//! installs `pulseaudio-utils`); without it these tests fail, they do not
//! skip.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Child;

use common::srbd::{strip_ansi, wait_bounded, Daemon, TempDir, DEADLINE};

#[test]
fn pactl_info_and_lists() {
    let d = Daemon::start("info");
    let info = d.pactl_ok(&["info"]);
    for want in [
        "Server Name: srbd",
        "Server Protocol Version: 35",
        "Default Sample Specification: float32le 2ch 48000Hz",
        "Default Channel Map: front-left,front-right",
        "Default Sink: srb_output",
        "Default Source: srb_output.monitor",
    ] {
        assert!(info.contains(want), "missing {want:?} in:\n{info}");
    }

    let sinks = d.pactl_ok(&["list", "sinks", "short"]);
    assert!(
        sinks.contains("0\tsrb_output\tsrbd\tfloat32le 2ch 48000Hz\t"),
        "{sinks}"
    );
    let sources = d.pactl_ok(&["list", "sources", "short"]);
    assert!(
        sources.contains("0\tsrb_output.monitor\tsrbd\tfloat32le 2ch 48000Hz\t"),
        "{sources}"
    );
    assert_eq!(d.pactl_ok(&["get-default-sink"]).trim(), "srb_output");
    assert_eq!(
        d.pactl_ok(&["get-default-source"]).trim(),
        "srb_output.monitor"
    );

    let long = d.pactl_ok(&["list", "sinks"]);
    for want in [
        "Name: srb_output",
        "Sample Specification: float32le 2ch 48000Hz",
        "Monitor Source: srb_output.monitor",
    ] {
        assert!(long.contains(want), "missing {want:?} in:\n{long}");
    }
    // Everything pactl can list, including the empty module and card lists.
    let all = d.pactl_ok(&["list"]);
    assert!(all.contains("Source #0"), "{all}");
    d.pactl_ok(&["stat"]);
    assert!(d.log().contains("client ready"), "{}", d.log());
}

#[test]
fn unsupported_command_is_an_error_reply() {
    let d = Daemon::start("unsupported");
    // SET_SINK_PORT: srbd's sink has no ports.
    let out = d.pactl(&["set-sink-port", "srb_output", "analog-output"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Not supported"), "{stderr}");
    assert!(d.log().contains("unsupported command"), "logged at info");
    // LOAD_MODULE with a bad argument: answered as PulseAudio answers it.
    let out = d.pactl(&["load-module", "module-null-sink", "bogus=1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Module initialization failed"), "{stderr}");
    // The server is still serving.
    d.pactl_ok(&["info"]);
}

#[test]
fn garbage_frame_disconnects_only_that_client() {
    let d = Daemon::start("garbage");
    let mut raw = UnixStream::connect(&d.socket).unwrap();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    // A descriptor announcing an empty frame: refused by the frame layer.
    raw.write_all(&[0u8; 20]).unwrap();
    let mut buf = [0u8; 64];
    match raw.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("expected a disconnect, got {n} bytes"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("expected a disconnect, got {e}"),
    }
    let info = d.pactl_ok(&["info"]);
    assert!(info.contains("Server Name: srbd"), "{info}");
    assert!(d.log().contains("malformed frame"), "{}", d.log());
}

#[test]
fn sigterm_exits_cleanly_and_removes_the_socket() {
    let mut d = Daemon::start("sigterm");
    d.pactl_ok(&["info"]);
    let status = d.stop();
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(!d.socket.exists());
}

/// `srbd` with no arguments: the default socket, the DSP peer started
/// (the embedded default), and a `paplay` through it works.
#[test]
fn no_arguments_just_works() {
    let d = Daemon::start_with("default", false);
    let info = d.pactl_ok(&["info"]);
    assert!(info.contains("Default Sink: srb_output"), "{info}");
    d.wait_for("the DSP peer to attach", || {
        d.log().contains("DSP attached").then_some(())
    });
    let wav = d.path("tone.wav");
    let tone: Vec<f32> = (0..9600).map(|i| (i as f32 * 0.05).sin() * 0.25).collect();
    common::srbd::write_wav_f32(&wav, 48_000, 2, &tone);
    d.paplay_ok(&wav);
}

#[test]
fn several_clients_at_once() {
    let d = Daemon::start("many");
    let children: Vec<Child> = (0..8)
        .map(|_| d.spawn_pactl(&["list", "sinks", "short"]))
        .collect();
    for child in children {
        let out = wait_bounded(child, "concurrent pactl");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}\n{}", d.log());
        assert!(stdout.contains("srb_output"), "{stdout}");
    }
}

/// A free TCP port on loopback (bound and released; the daemon binds it
/// right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_clients_need_the_cookie() {
    let port = free_port();
    let dir = TempDir::new("tcp-cfg");
    let cookie = dir.0.join("home/.config/pulse/cookie");
    let cfg = dir.0.join("srbd.toml");
    std::fs::write(&cfg, format!("cookie = {:?}\n", cookie.to_str().unwrap())).unwrap();
    let d = Daemon::start_args(
        "tcp",
        &[
            "--tcp",
            &format!("127.0.0.1:{port}"),
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    // The unix socket comes first; TCP (and the cookie) right after.
    d.wait_for("the TCP listener", || {
        d.log().contains("serving TCP clients").then_some(())
    });
    assert!(cookie.exists(), "srbd created the cookie\n{}", d.log());
    let server = format!("tcp:127.0.0.1:{port}");
    let run = |cookie: &std::path::Path| {
        let child = d
            .client("pactl")
            .env("PULSE_SERVER", &server)
            .env("PULSE_COOKIE", cookie)
            .arg("info")
            .spawn()
            .expect("spawn pactl");
        wait_bounded(child, "pactl over tcp")
    };
    let ok = run(&cookie);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{ok:?}\n{}", d.log());
    assert!(stdout.contains("Server Name: srbd"), "{stdout}");
    let wrong = dir.0.join("wrong-cookie");
    std::fs::write(&wrong, [0x5a; 256]).unwrap();
    let refused = run(&wrong);
    assert!(!refused.status.success(), "a wrong cookie is refused");
    assert!(
        strip_ansi(&d.log()).contains("AUTH refused: wrong cookie"),
        "{}",
        d.log()
    );
}

/// What `pactl` sends for index-or-name arguments: a number means an index
/// (pactl passes it as the name), `@DEFAULT_SINK@` the default, as on
/// PulseAudio; an unknown index is "No such entity".
#[test]
fn devices_by_index_name_and_default() {
    let d = Daemon::start("by-index");
    d.pactl_ok(&["set-sink-volume", "0", "50%"]);
    let v = d.pactl_ok(&["get-sink-volume", "0"]);
    assert!(v.contains("50%"), "{v}");
    let v = d.pactl_ok(&["get-sink-volume", "@DEFAULT_SINK@"]);
    assert!(v.contains("50%"), "{v}");
    d.pactl_ok(&["set-sink-mute", "0", "toggle"]);
    assert!(d.pactl_ok(&["get-sink-mute", "0"]).contains("Mute: yes"));
    d.pactl_ok(&["set-sink-mute", "srb_output", "toggle"]);
    assert!(d
        .pactl_ok(&["get-sink-mute", "srb_output"])
        .contains("Mute: no"));
    d.pactl_ok(&["set-default-sink", "0"]);
    d.pactl_ok(&["set-default-source", "0"]);
    assert!(d.pactl_ok(&["get-source-mute", "0"]).contains("Mute: no"));
    d.pactl_ok(&["set-source-volume", "0", "80%"]);
    assert!(d
        .pactl_ok(&["get-source-volume", "@DEFAULT_SOURCE@"])
        .contains("80%"));
    let out = d.pactl(&["set-sink-volume", "7", "50%"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such entity"),
        "{out:?}"
    );
}

/// Commands desktop tools send about the server's objects, as `pactl`
/// and `pasuspender` send them: suspend and resume (state SUSPENDED in the
/// lists), `pasuspender -- CMD` runs its command, moving a stream to the
/// sink it is on, the message handlers, and a module name srbd does not
/// have (refused with a log line naming it).
#[test]
fn suspend_move_modules_and_messages() {
    let d = Daemon::start_args("server-cmds", &["--dsp", "off"]);
    d.pactl_ok(&["suspend-sink", "0", "1"]);
    let sinks = d.pactl_ok(&["list", "short", "sinks"]);
    assert!(sinks.contains("SUSPENDED"), "{sinks}");
    d.pactl_ok(&["suspend-sink", "srb_output", "0"]);
    let sinks = d.pactl_ok(&["list", "short", "sinks"]);
    assert!(!sinks.contains("SUSPENDED"), "{sinks}");
    d.pactl_ok(&["suspend-source", "0", "1"]);
    assert!(d
        .pactl_ok(&["list", "short", "sources"])
        .contains("SUSPENDED"));
    d.pactl_ok(&["suspend-source", "0", "0"]);

    // pasuspender suspends everything, runs its command, resumes.
    let mut cmd = d.client("pasuspender");
    cmd.args(["--", "sh", "-c", "echo ran"]);
    let out = wait_bounded(cmd.spawn().expect("spawn pasuspender"), "pasuspender");
    d.assert_exit_ok(&out, "pasuspender");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ran"));
    assert!(!d
        .pactl_ok(&["list", "short", "sinks"])
        .contains("SUSPENDED"));

    // Moving a playing stream to the sink it is on.
    let mut pacat = d.spawn_pacat(&["--raw", "--format=s16le", "--rate=48000", "--channels=2"]);
    let mut stdin = pacat.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = vec![1u8; 19_200];
        while stdin.write_all(&chunk).is_ok() {}
    });
    let index = d.wait_for("a sink input", || {
        d.list_short("sink-inputs")
            .first()
            .map(|row| row[0].clone())
    });
    d.pactl_ok(&["move-sink-input", &index, "0"]);
    d.pactl_ok(&["move-sink-input", &index, "@DEFAULT_SINK@"]);
    let out = d.pactl(&["move-sink-input", "999", "0"]);
    assert!(!out.status.success());
    let _ = pacat.kill();
    let _ = pacat.wait();
    let _ = feeder.join();

    let handlers = d.pactl_ok(&["list", "message-handlers"]);
    assert!(handlers.contains("/core"), "{handlers}");
    let out = d.pactl(&["load-module", "module-no-such-thing"]);
    assert!(!out.status.success());
    assert!(
        strip_ansi(&d.log()).contains("LOAD_MODULE failed")
            && d.log().contains("no module named \"module-no-such-thing\""),
        "{}",
        d.log()
    );
}
