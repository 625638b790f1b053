//! Links the firmware (memory.x, cortex-m-rt's link.x, defmt.x) and computes
//! the expected output by running the board's own chain (../common/chain.rs)
//! with srb-dsp-sim on the host.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

#[path = "../common/chain.rs"]
mod chain;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=../common/chain.rs");
    println!("cargo:rerun-if-changed=build.rs");

    let mut gen = chain::Lcg::new(chain::SEED);
    let mut dsp = chain::Chain::new();
    let mut buf = [0f32; chain::SAMPLES];
    let mut src = String::new();
    let mut sums = Vec::new();
    writeln!(src, "/// Expected output samples (f32 bit patterns), period after period.").unwrap();
    writeln!(
        src,
        "pub static SAMPLES: [u32; {}] = [",
        chain::PERIODS * chain::SAMPLES
    )
    .unwrap();
    for _ in 0..chain::PERIODS {
        gen.fill(&mut buf);
        dsp.process(&mut buf);
        for s in &buf {
            write!(src, "{:#010x},", s.to_bits()).unwrap();
        }
        src.push('\n');
        sums.push(chain::checksum(buf.iter().map(|s| s.to_bits())));
    }
    writeln!(src, "];").unwrap();
    writeln!(src, "/// Expected per-period checksums (chain::checksum).").unwrap();
    writeln!(src, "pub static CHECKSUMS: [u32; {}] = {:?};", sums.len(), sums).unwrap();
    fs::write(out.join("expected.rs"), src).expect("write expected.rs");
}
