//! What every board firmware ends with: a semihosting exit (QEMU's exit code
//! is the test verdict), a named failure for a refused block, and a panic
//! handler that logs and exits 1.

use cortex_m_semihosting::debug;

/// Ends the run: QEMU exits 0 when `ok`, else 1.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

/// Logs why srb-core refused a block and fails the run.
pub fn fail_attach(what: &str, e: srb_core::AttachError) -> ! {
    defmt::error!("{} failed: {}", what, e);
    exit(false)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(false)
}
