//! Proof that `srb-core` needs neither `std` nor a libc: a freestanding
//! x86_64 Linux program with its own `_start`, raw `write`/`exit_group`
//! system calls and its own `mem*` functions. It runs a channel of each
//! layout over a static block and exits 0 only if every byte came back.
#![no_std]
#![no_main]

use core::ptr::{addr_of_mut, NonNull};

use srb_core::layout::{pa, srb};
use srb_core::{Block, Notify, SpinSignal, SrbChannel, Wait, WaitDecision};

#[repr(C, align(128))]
struct Mem([u8; 8192]);

static mut SRB_MEM: Mem = Mem([0; 8192]);
static mut PA_MEM: Mem = Mem([0; 8192]);
static WAKE_A: SpinSignal = SpinSignal::with_budget(1000);
static WAKE_B: SpinSignal = SpinSignal::with_budget(1000);

fn block(mem: *mut Mem) -> Block {
    // SAFETY: a static, used by one channel pair at a time, reached only
    // through the core (no references are formed: `addr_of_mut!` below).
    unsafe { Block::new(NonNull::new(mem.cast::<u8>()).unwrap(), 8192) }
}

/// Sends `msg` from `a` to `b`, checks it arrives, and checks the fdsem
/// told `b` not to sleep because a post is pending. Returns an exit code.
fn round_trip<P, C>(
    mut a: SrbChannel<P, C, &SpinSignal, &SpinSignal>,
    mut b: SrbChannel<P, C, &SpinSignal, &SpinSignal>,
) -> i32
where
    P: srb_core::RingProducer,
    C: srb_core::RingConsumer,
{
    let msg = b"srb-core runs without std and without libc";
    let mut sent = 0;
    let mut got = [0u8; 64];
    let mut n = 0;
    while n < msg.len() {
        match a.write(&msg[sent..]) {
            Ok(w) => sent += w,
            Err(_) => return 2,
        }
        if b.before_wait() != Ok(WaitDecision::DontSleep) {
            return 3;
        }
        match b.read(&mut got[n..]) {
            Ok(r) => n += r,
            Err(_) => return 4,
        }
    }
    if &got[..n] != msg {
        return 5;
    }
    0
}

fn run() -> i32 {
    // SAFETY: fresh static memory; one creator, one attacher.
    let Ok((_, creator)) = (unsafe { srb::create(block(addr_of_mut!(SRB_MEM)), 1024) }) else {
        return 10;
    };
    // SAFETY: as above.
    let Ok((_, attacher)) = (unsafe { srb::attach(block(addr_of_mut!(SRB_MEM))) }) else {
        return 11;
    };
    let code = round_trip(
        SrbChannel::new(creator, &WAKE_B, &WAKE_A),
        SrbChannel::new(attacher, &WAKE_A, &WAKE_B),
    );
    if code != 0 {
        return 20 + code;
    }
    // SAFETY: fresh static memory; one server, one client.
    let Ok((g, server)) = (unsafe { pa::init_server(block(addr_of_mut!(PA_MEM))) }) else {
        return 12;
    };
    if g.readbuf_offset != 48 {
        return 13;
    }
    // SAFETY: as above.
    let Ok((_, client)) = (unsafe { pa::adopt_client(block(addr_of_mut!(PA_MEM))) }) else {
        return 14;
    };
    let code = round_trip(
        SrbChannel::new(client, &WAKE_B, &WAKE_A),
        SrbChannel::new(server, &WAKE_A, &WAKE_B),
    );
    if code != 0 {
        return 30 + code;
    }
    // The spin signal counts what it was sent.
    let _ = WAKE_A.notify();
    let mut w = &WAKE_A;
    if w.try_take() != Ok(1) {
        return 40;
    }
    0
}

// --- the freestanding runtime ------------------------------------------------

fn sys_write(fd: usize, buf: &[u8]) {
    // SAFETY: Linux x86_64 `write(fd, buf, len)`; the kernel only reads `buf`.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") 1usize => _, in("rdi") fd,
            in("rsi") buf.as_ptr(), in("rdx") buf.len(),
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
}

fn sys_exit(code: i32) -> ! {
    // SAFETY: Linux x86_64 `exit_group(code)`; does not return.
    unsafe {
        core::arch::asm!("syscall", in("rax") 231usize, in("rdi") code as usize,
            options(noreturn, nostack));
    }
}

extern "C" fn rust_start() -> ! {
    let code = run();
    if code == 0 {
        sys_write(1, b"nostd-check: ok\n");
    } else {
        sys_write(2, b"nostd-check: FAILED\n");
    }
    sys_exit(code)
}

// The kernel enters with the stack 16-byte aligned and no return address;
// align it as the C ABI expects at a call and call into Rust.
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {start}",
    "ud2",
    start = sym rust_start,
);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    sys_write(2, b"nostd-check: panic\n");
    sys_exit(101)
}

// The compiler may call these; without libc we provide them. Volatile
// accesses keep LLVM from turning the loops back into calls to themselves.

/// # Safety
/// C `memcpy` contract.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: the caller guarantees both ranges are valid for `n` bytes.
        unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
    }
    dst
}

/// # Safety
/// C `memmove` contract.
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) < (src as usize) {
        for i in 0..n {
            // SAFETY: as for `memcpy`; forward copy is safe when dst < src.
            unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        }
    } else {
        for i in (0..n).rev() {
            // SAFETY: as for `memcpy`; backward copy is safe when dst >= src.
            unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        }
    }
    dst
}

/// # Safety
/// C `memset` contract.
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: the caller guarantees `dst` is valid for `n` bytes.
        unsafe { dst.add(i).write_volatile(c as u8) };
    }
    dst
}

/// # Safety
/// C `memcmp` contract.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller guarantees both ranges are valid for `n` bytes.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// C `bcmp` contract.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as `memcmp`.
    unsafe { memcmp(a, b, n) }
}

/// The precompiled `core` references the unwinding personality routine even
/// with `panic = "abort"`; nothing ever unwinds here, so it is never called.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}
