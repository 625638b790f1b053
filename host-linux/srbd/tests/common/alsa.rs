//! The ALSA configuration srbd's ALSA tests share (no sound card needed:
//! alsa-lib's own plugins stand in for one), and a private PulseAudio as
//! a real-time "card" reached through the `pulse` plugin.
//!
//! | PCM | what it is |
//! |---|---|
//! | `srbtest_out:FILE=…` | playback into a raw file over `null` (no clock: paced) |
//! | `srbtest_in:INFILE=…` | capture from a raw file |
//! | `srbtest_pa:SERVER=…` | the `pulse` plugin to a given server |
//! | `srbtest_linear`, `srbtest_stereo_only` | devices that refuse a format or a channel count |
//! | `srbtest_pulse`, `srbtest_plug_pulse`, `srbtest_asym`, `srbtest_pipewire_inline` | sound-server routes, for type detection |
//! | `srbtest_no_card` | a `hw` device on a card that does not exist |
//!
//! [`setup`] writes it once per test process into cargo's test temp dir
//! and names it in `ALSA_CONFIG_PATH` (inherited by the srbd a test
//! starts).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::srbd::{poll_until, signal, wait_bounded, Signal};

const CONFIG: &str = r#"
pcm.srbtest_out {
    @args [ FILE ]
    @args.FILE { type string }
    type file
    slave.pcm "null"
    file $FILE
    format "raw"
}
pcm.srbtest_in {
    @args [ INFILE ]
    @args.INFILE { type string }
    type file
    slave.pcm "null"
    file "/dev/null"
    infile $INFILE
    format "raw"
}
pcm.srbtest_linear {
    @args [ FILE ]
    @args.FILE { type string }
    type linear
    slave {
        pcm { type file slave.pcm "null" file $FILE format "raw" }
        format S16_LE
    }
}
pcm.srbtest_stereo_only {
    @args [ FILE ]
    @args.FILE { type string }
    type multi
    slaves.a { pcm { type file slave.pcm "null" file $FILE format "raw" } channels 2 }
    bindings.0 { slave a channel 0 }
    bindings.1 { slave a channel 1 }
}
pcm.srbtest_pulse { type pulse }
pcm.srbtest_plug_pulse { type plug slave.pcm "srbtest_pulse" }
pcm.srbtest_asym {
    type asym
    playback.pcm "srbtest_pulse"
    capture.pcm "null"
}
pcm.srbtest_pipewire_inline { type plug slave { pcm { type pipewire } } }
pcm.srbtest_no_card { type hw card 97 }
pcm.srbtest_pa {
    @args [ SERVER ]
    @args.SERVER { type string }
    type pulse
    server $SERVER
}
"#;

/// Sets `ALSA_CONFIG_PATH` (and a libpulse client.conf without autospawn,
/// for the `pulse` plugin) once, before any ALSA call of this process.
pub fn setup() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("alsa_config");
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("asound.conf");
        std::fs::write(&conf, CONFIG).unwrap();
        let client = dir.join("client.conf");
        std::fs::write(&client, "autospawn = no\n").unwrap();
        // Set once, before the first ALSA or libpulse call of the process
        // (every test calls setup() first, and this runs once).
        std::env::set_var(
            "ALSA_CONFIG_PATH",
            format!("/usr/share/alsa/alsa.conf:{}", conf.display()),
        );
        std::env::set_var("PULSE_CLIENTCONFIG", &client);
    });
}

/// A private PulseAudio with a null sink on `dir/native`: a real-time
/// "card" reached through ALSA's `pulse` plugin.
pub struct PrivatePulse {
    child: Option<Child>,
    dir: PathBuf,
}

impl PrivatePulse {
    pub fn start(dir: &Path) -> Self {
        let socket = dir.join("native");
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::File::create(dir.join("pulseaudio.log")).unwrap();
        let child = Command::new(super::srbd::find_tool("pulseaudio"))
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
            ])
            .args(["-L", "module-null-sink"])
            .arg("-L")
            .arg(format!(
                "module-native-protocol-unix socket={} auth-anonymous=1",
                socket.display()
            ))
            .env("HOME", dir.join("home"))
            .env("XDG_RUNTIME_DIR", dir.join("xdg"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("pulseaudio (Debian's pulseaudio package) is needed by this test");
        poll_until(
            "private pulseaudio listening",
            || socket.exists().then_some(()),
            || std::fs::read_to_string(dir.join("pulseaudio.log")).unwrap_or_default(),
        );
        Self {
            child: Some(child),
            dir: dir.to_owned(),
        }
    }

    /// The `srbtest_pa` device naming this server.
    pub fn device(&self) -> String {
        format!(
            "srbtest_pa:SERVER=unix:{}",
            self.dir.join("native").display()
        )
    }

    /// Sends `sig` to the server (STOP/CONT: a device that stalls).
    pub fn signal(&self, sig: Signal) {
        if let Some(c) = &self.child {
            signal(c, sig);
        }
    }

    /// Kills the server (the device vanishes).
    pub fn kill(&mut self) {
        if let Some(c) = self.child.take() {
            signal(&c, Signal::KILL);
            wait_bounded(c, "killed pulseaudio");
        }
    }
}

impl Drop for PrivatePulse {
    fn drop(&mut self) {
        self.kill();
    }
}
