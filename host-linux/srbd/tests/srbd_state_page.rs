//! srbd's read-only state page, end to end: what `srb-top` reads from a
//! playing srbd (the audio clock advancing at the sink rate, the DSP's
//! figures), and that the fd srbd hands out cannot be written through.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::srbd::*;
use serde_json::Value;
use srb_linux::state_page::{self, monotonic_ns, StreamState};

const RATE: u64 = 48_000;

/// The `srb-top` binary of this build (srb-linux's, built on demand: cargo
/// builds only this package's binaries for its tests).
fn srb_top() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_srbd"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let bin = dir.join("srb-top");
    if !bin.exists() {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "-p", "srb-linux", "--bin", "srb-top"]);
        if dir.ends_with("release") {
            cargo.arg("--release");
        }
        let st = cargo.status().expect("run cargo build");
        assert!(st.success(), "building srb-top");
    }
    bin
}

/// One `srb-top --once --json` snapshot of `d`'s page.
fn top_once(d: &Daemon) -> Value {
    let out = Command::new(srb_top())
        .args(["--once", "--json", "--control"])
        .arg(d.control_path())
        .output()
        .expect("run srb-top");
    assert!(
        out.status.success(),
        "srb-top: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    serde_json::from_slice(&out.stdout).expect("srb-top prints JSON")
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// A long stereo tone at 0.5 (the DSP's peak meter must show it).
fn tone_wav(d: &Daemon, seconds: u64) -> PathBuf {
    let frames = seconds * RATE;
    let samples: Vec<f32> = (0..frames)
        .flat_map(|i| {
            let x = 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / RATE as f64).sin();
            [x as f32, x as f32]
        })
        .collect();
    let path = d.path("tone.wav");
    write_wav_f32(&path, RATE as u32, 2, &samples);
    path
}

#[test]
fn srb_top_shows_the_clock_advancing_at_the_sink_rate_and_the_dsp() {
    let d = Daemon::start("page-clock");
    d.wait_for("the DSP to attach", || {
        d.log().contains("DSP attached").then_some(())
    });
    let player = d.spawn_paplay(&tone_wav(&d, 6), &[]);
    d.wait_for("the stream running on the page", || {
        let s = top_once(&d);
        (s["sinks"][0]["state"] == "running").then_some(())
    });
    let a = top_once(&d);
    let sink_a = &a["sinks"][0];
    assert_eq!(sink_a["name"], "srb_output");
    assert_eq!(u(sink_a, "rate"), RATE);
    assert_eq!(a["sources"][0]["name"], "srb_output.monitor");
    // A second of audio later (by the page's own position).
    let b = d.wait_for("a second of audio on the page", || {
        let b = top_once(&d);
        (u(&b["sinks"][0], "position") >= u(sink_a, "position") + RATE).then_some(b)
    });
    let sink_b = &b["sinks"][0];
    let frames = (u(sink_b, "position") - u(sink_a, "position")) as f64;
    let ns = (u(sink_b, "clock_ns") - u(sink_a, "clock_ns")) as f64;
    let rate = frames * 1e9 / ns;
    assert!(
        (rate - RATE as f64).abs() <= RATE as f64 * 0.01,
        "the page's clock runs at {rate:.1} Hz over {frames} frames, the sink at {RATE}"
    );
    // The interpolated position is the page's position carried to now.
    assert!(u(sink_b, "position_now") >= u(sink_b, "position"));
    // The DSP: the running dsp-sim, processing, metering the tone.
    let dsp = &b["dsps"][0];
    let pid = u(dsp, "pid");
    assert!(Path::new(&format!("/proc/{pid}/cmdline")).exists());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("dsp-sim"),
        "pid {pid} is the DSP"
    );
    assert!(u(dsp, "periods") > 0, "DSP periods in {dsp}");
    assert!(u(dsp, "mean_ns") > 0 && u(dsp, "worst_ns") >= u(dsp, "mean_ns"));
    assert_eq!(u(dsp, "restarts"), 0);
    let peaks = dsp["peaks"].as_array().expect("peaks");
    assert_eq!(peaks.len(), 2);
    // The DSP reports peaks about once a second: wait for one with the tone.
    d.wait_for("the tone on the DSP's meters", || {
        let s = top_once(&d);
        let p = s["dsps"][0]["peaks"][0].as_f64().unwrap_or(0.0);
        ((p - 0.5).abs() < 0.01).then_some(())
    });
    let out = wait_bounded(player, "paplay");
    d.assert_exit_ok(&out, "paplay");
    // Idle again once the stream is gone.
    d.wait_for("the sink idle on the page", || {
        (top_once(&d)["sinks"][0]["state"] == "idle").then_some(())
    });
}

#[test]
fn the_page_reads_the_clock_without_a_round_trip_and_cannot_be_written() {
    let d = Daemon::start_args("page-ro", &["--dsp", "off"]);
    let page = d.state_page();
    let s = page.snapshot().expect("snapshot");
    assert_eq!(s.sinks().len(), 1);
    assert_eq!(s.sources().len(), 1);
    assert!(s.dsps().is_empty(), "no DSP runs: none on the page");
    assert_eq!(s.sinks()[0].state, StreamState::Idle);
    // The clock read from the page, interpolated to now, is within a
    // period or two of what the page says a moment later.
    let c = page.sink_clock(0).expect("sink clock");
    let later = d.wait_for("a newer publication", || {
        let s = page.snapshot().unwrap();
        (s.sinks()[0].clock_ns > c.clock_ns).then_some(s)
    });
    let then = c.position_at(later.sinks()[0].clock_ns);
    let diff = then.abs_diff(later.sinks()[0].position);
    assert!(diff <= 2 * 480, "interpolation off by {diff} frames");
    assert!(monotonic_ns() >= later.published_ns);
    // The states are pactl's: suspending the sink shows on the page.
    d.pactl_ok(&["suspend-sink", "srb_output", "1"]);
    d.wait_for("the sink suspended on the page", || {
        let s = page.snapshot().unwrap();
        (s.sinks()[0].state == StreamState::Suspended
            && s.sources()[0].state == StreamState::Suspended)
            .then_some(())
    });
    d.pactl_ok(&["suspend-sink", "srb_output", "0"]);
    d.wait_for("the sink idle again on the page", || {
        (page.snapshot().unwrap().sinks()[0].state == StreamState::Idle).then_some(())
    });
    // The fd itself: no writable mapping, no resize.
    let fd =
        state_page::client::receive_page_fd(&d.control_path(), std::time::Duration::from_secs(5))
            .expect("page fd");
    // SAFETY: a fresh mapping request of one page at an address the kernel
    // picks; it is expected to fail, and is unmapped if it does not.
    let p = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            4096,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &fd,
            0,
        )
    };
    match p {
        Err(e) => assert_eq!(e, rustix::io::Errno::PERM, "writable mapping refused"),
        Ok(p) => {
            // SAFETY: the mapping just made, of 4096 bytes.
            let _ = unsafe { rustix::mm::munmap(p, 4096) };
            panic!("srbd's state page could be mapped writable");
        }
    }
    assert_eq!(
        rustix::fs::ftruncate(&fd, 8192),
        Err(rustix::io::Errno::PERM),
        "resize refused"
    );
}
