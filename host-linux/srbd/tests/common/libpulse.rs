//! A libpulse client of the tests' own, for what no Debian tool asks of a
//! server: `PEAK_DETECT` record streams (level meters), `monitor_stream`
//! with a chosen spec, and record streams offering a list of formats
//! (`pa_stream_new_extended`, protocol 22).
//!
//! Debian's `libpulse.so.0` (16.1) is loaded with `dlopen` (the
//! `libloading` crate) and driven through its C API on a plain
//! `pa_mainloop` that the test iterates itself, 100 ms per poll at most,
//! under the harness's [`DEADLINE`]: no callbacks, only state queries, so
//! every wait is bounded and no thread is involved.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::time::Instant;

use libloading::{Library, Symbol};

use super::srbd::DEADLINE;

/// `PA_STREAM_PEAK_DETECT`.
pub const PEAK_DETECT: u32 = 0x0800;
/// `PA_STREAM_ADJUST_LATENCY`.
pub const ADJUST_LATENCY: u32 = 0x2000;
/// `PA_STREAM_DONT_MOVE`.
pub const DONT_MOVE: u32 = 0x0200;
/// `PA_SAMPLE_FLOAT32LE`.
pub const FLOAT32LE: u32 = 5;

#[repr(C)]
struct SampleSpec {
    format: u32,
    rate: u32,
    channels: u8,
}

#[repr(C)]
struct BufferAttr {
    maxlength: u32,
    tlength: u32,
    prebuf: u32,
    minreq: u32,
    fragsize: u32,
}

type Ptr = *mut c_void;

/// A connected libpulse context on its own main loop.
pub struct Pulse {
    lib: Library,
    ml: Ptr,
    ctx: Ptr,
}

/// A record stream of a [`Pulse`] context.
pub struct Stream(Ptr);

/// How to open a record stream.
pub struct RecordOpts<'a> {
    /// Sample format, rate, channels (ignored when `formats` is set).
    pub spec: (u32, u32, u8),
    /// Format strings for `pa_stream_new_extended` (`pcm, rate=…`).
    pub formats: &'a [&'a str],
    /// `pa_stream_set_monitor_stream`: record this sink input alone.
    pub monitor_stream: Option<u32>,
    /// `pa_stream_flags_t`.
    pub flags: u32,
    /// `fragsize` in bytes (`u32::MAX`: the server's choice).
    pub fragsize: u32,
}

impl Pulse {
    /// Loads libpulse and connects to `server` (`unix:PATH`); panics
    /// unless the context becomes ready within the deadline.
    pub fn connect(server: &str) -> Self {
        // SAFETY: libpulse's initialisers are safe to run in any thread.
        let lib = unsafe { Library::new("libpulse.so.0") }
            .expect("dlopen libpulse.so.0 (Debian's libpulse0 must be installed)");
        let mut p = Self {
            lib,
            ml: std::ptr::null_mut(),
            ctx: std::ptr::null_mut(),
        };
        // SAFETY: the signatures are libpulse 16.1's (pulse/mainloop.h,
        // pulse/context.h); the pointers passed are the ones it returned.
        unsafe {
            p.ml = p.f::<unsafe extern "C" fn() -> Ptr>(b"pa_mainloop_new\0")();
            let api = p.f::<unsafe extern "C" fn(Ptr) -> Ptr>(b"pa_mainloop_get_api\0")(p.ml);
            let name = c"srbd-record-test";
            p.ctx = p.f::<unsafe extern "C" fn(Ptr, *const c_char) -> Ptr>(b"pa_context_new\0")(
                api,
                name.as_ptr(),
            );
            let server = CString::new(server).unwrap();
            // PA_CONTEXT_NOAUTOSPAWN = 1.
            let rc = p.f::<unsafe extern "C" fn(Ptr, *const c_char, c_uint, Ptr) -> c_int>(
                b"pa_context_connect\0",
            )(p.ctx, server.as_ptr(), 1, std::ptr::null_mut());
            assert_eq!(rc, 0, "pa_context_connect: {}", p.error());
        }
        p.run_until("the context to become ready", |p| match p.context_state() {
            4 => Some(()),
            5 | 6 => panic!("context failed: {}", p.error()),
            _ => None,
        });
        p
    }

    /// A symbol of libpulse.
    ///
    /// # Safety
    /// `T` must be the symbol's C signature.
    unsafe fn f<T>(&self, name: &[u8]) -> Symbol<'_, T> {
        // SAFETY: the caller names the right signature.
        unsafe { self.lib.get(name) }.unwrap_or_else(|e| panic!("libpulse symbol: {e}"))
    }

    fn context_state(&self) -> c_int {
        // SAFETY: `ctx` is live; `pa_context_get_state(const pa_context*)`.
        unsafe { self.f::<unsafe extern "C" fn(Ptr) -> c_int>(b"pa_context_get_state\0")(self.ctx) }
    }

    /// The context's last error, as libpulse words it.
    pub fn error(&self) -> String {
        // SAFETY: `ctx` is live; pa_strerror returns a static string.
        unsafe {
            let e = self.f::<unsafe extern "C" fn(Ptr) -> c_int>(b"pa_context_errno\0")(self.ctx);
            let s = self.f::<unsafe extern "C" fn(c_int) -> *const c_char>(b"pa_strerror\0")(e);
            CStr::from_ptr(s).to_string_lossy().into_owned()
        }
    }

    /// One main-loop iteration that waits 100 ms at most.
    fn iterate(&mut self) {
        // SAFETY: `ml` is live; prepare/poll/dispatch is the documented
        // split of pa_mainloop_iterate; the timeout is in microseconds.
        unsafe {
            if self.f::<unsafe extern "C" fn(Ptr, c_int) -> c_int>(b"pa_mainloop_prepare\0")(
                self.ml, 100_000,
            ) < 0
            {
                return;
            }
            self.f::<unsafe extern "C" fn(Ptr) -> c_int>(b"pa_mainloop_poll\0")(self.ml);
            self.f::<unsafe extern "C" fn(Ptr) -> c_int>(b"pa_mainloop_dispatch\0")(self.ml);
        }
    }

    /// Iterates the main loop until `f` says done; panics after
    /// [`DEADLINE`].
    pub fn run_until<T>(&mut self, what: &str, mut f: impl FnMut(&mut Self) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "libpulse: no {what} within {DEADLINE:?}"
            );
            self.iterate();
        }
    }

    /// Opens a record stream on the default source; `Err(libpulse's
    /// error text)` when the server refuses it.
    pub fn record(&mut self, o: &RecordOpts<'_>) -> Result<Stream, String> {
        // SAFETY: libpulse 16.1 signatures (pulse/stream.h, format.h); the
        // format infos are freed after pa_stream_new_extended copied them.
        let s = unsafe {
            let name = c"peaks";
            let s = if o.formats.is_empty() {
                let ss = SampleSpec {
                    format: o.spec.0,
                    rate: o.spec.1,
                    channels: o.spec.2,
                };
                self.f::<unsafe extern "C" fn(Ptr, *const c_char, *const SampleSpec, Ptr) -> Ptr>(
                    b"pa_stream_new\0",
                )(self.ctx, name.as_ptr(), &ss, std::ptr::null_mut())
            } else {
                let from = self.f::<unsafe extern "C" fn(*const c_char) -> Ptr>(
                    b"pa_format_info_from_string\0",
                );
                let infos: Vec<Ptr> = o
                    .formats
                    .iter()
                    .map(|f| {
                        let c = CString::new(*f).unwrap();
                        let p = from(c.as_ptr());
                        assert!(!p.is_null(), "libpulse cannot parse format {f:?}");
                        p
                    })
                    .collect();
                let s = self.f::<unsafe extern "C" fn(
                    Ptr,
                    *const c_char,
                    *const Ptr,
                    c_uint,
                    Ptr,
                ) -> Ptr>(b"pa_stream_new_extended\0")(
                    self.ctx,
                    name.as_ptr(),
                    infos.as_ptr(),
                    infos.len() as c_uint,
                    std::ptr::null_mut(),
                );
                let free = self.f::<unsafe extern "C" fn(Ptr)>(b"pa_format_info_free\0");
                for p in infos {
                    free(p);
                }
                s
            };
            assert!(!s.is_null(), "pa_stream_new: {}", self.error());
            if let Some(i) = o.monitor_stream {
                let rc = self.f::<unsafe extern "C" fn(Ptr, u32) -> c_int>(
                    b"pa_stream_set_monitor_stream\0",
                )(s, i);
                assert_eq!(rc, 0, "pa_stream_set_monitor_stream");
            }
            let attr = BufferAttr {
                maxlength: u32::MAX,
                tlength: u32::MAX,
                prebuf: u32::MAX,
                minreq: u32::MAX,
                fragsize: o.fragsize,
            };
            let rc = self.f::<unsafe extern "C" fn(
                Ptr,
                *const c_char,
                *const BufferAttr,
                c_uint,
            ) -> c_int>(b"pa_stream_connect_record\0")(
                s, std::ptr::null(), &attr, o.flags
            );
            assert_eq!(rc, 0, "pa_stream_connect_record: {}", self.error());
            Stream(s)
        };
        // PA_STREAM_READY = 2, FAILED = 3, TERMINATED = 4.
        let state = self.run_until("record stream to be ready or fail", |p| {
            let st = p.stream_state(&s);
            (st >= 2).then_some(st)
        });
        if state == 2 {
            Ok(s)
        } else {
            let e = self.error();
            self.unref(s);
            Err(e)
        }
    }

    /// `pa_stream_get_state`.
    pub fn stream_state(&self, s: &Stream) -> c_int {
        // SAFETY: `s` is a live stream of this context.
        unsafe { self.f::<unsafe extern "C" fn(Ptr) -> c_int>(b"pa_stream_get_state\0")(s.0) }
    }

    /// The stream's sample spec: (format, rate, channels).
    pub fn spec(&self, s: &Stream) -> (u32, u32, u8) {
        // SAFETY: `s` is ready; libpulse returns a pointer into the stream.
        unsafe {
            let ss = &*self.f::<unsafe extern "C" fn(Ptr) -> *const SampleSpec>(
                b"pa_stream_get_sample_spec\0",
            )(s.0);
            (ss.format, ss.rate, ss.channels)
        }
    }

    /// The stream's format info as libpulse prints it
    /// (`pa_format_info_snprint`).
    pub fn format(&self, s: &Stream) -> String {
        let mut buf = [0u8; 256];
        // SAFETY: `s` is ready; snprint writes at most `buf.len()` bytes
        // including the NUL.
        unsafe {
            let f = self.f::<unsafe extern "C" fn(Ptr) -> Ptr>(b"pa_stream_get_format_info\0")(s.0);
            assert!(!f.is_null(), "no format info on a ready stream");
            self.f::<unsafe extern "C" fn(*mut c_char, usize, Ptr) -> *mut c_char>(
                b"pa_format_info_snprint\0",
            )(buf.as_mut_ptr().cast(), buf.len(), f);
        }
        CStr::from_bytes_until_nul(&buf)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// Reads until `n` bytes were recorded (holes read as zeros); panics
    /// if the stream fails or the deadline passes.
    pub fn read(&mut self, s: &Stream, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        self.run_until(&format!("{n} recorded bytes"), |p| {
            assert_eq!(p.stream_state(s), 2, "record stream failed: {}", p.error());
            loop {
                let mut data: *const c_void = std::ptr::null();
                let mut len = 0usize;
                // SAFETY: peek hands out a pointer valid until drop.
                unsafe {
                    let rc = p
                        .f::<unsafe extern "C" fn(Ptr, *mut *const c_void, *mut usize) -> c_int>(
                            b"pa_stream_peek\0",
                        )(s.0, &mut data, &mut len);
                    assert_eq!(rc, 0, "pa_stream_peek");
                    if len == 0 {
                        break;
                    }
                    if data.is_null() {
                        out.resize(out.len() + len, 0);
                    } else {
                        out.extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len));
                    }
                    p.f::<unsafe extern "C" fn(Ptr) -> c_int>(b"pa_stream_drop\0")(s.0);
                }
            }
            (out.len() >= n).then_some(())
        });
        out.truncate(n);
        out
    }

    /// Disconnects and frees a stream.
    pub fn unref(&mut self, s: Stream) {
        // SAFETY: `s` is a stream of this context, not used afterwards.
        unsafe {
            if self.stream_state(&s) == 2 {
                self.f::<unsafe extern "C" fn(Ptr) -> c_int>(b"pa_stream_disconnect\0")(s.0);
            }
            self.f::<unsafe extern "C" fn(Ptr)>(b"pa_stream_unref\0")(s.0);
        }
    }

    /// Whether the context is still connected (a refused stream must not
    /// cost the connection).
    pub fn connected(&self) -> bool {
        self.context_state() == 4
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        // SAFETY: the context and main loop are ours and freed once.
        unsafe {
            self.f::<unsafe extern "C" fn(Ptr)>(b"pa_context_disconnect\0")(self.ctx);
            self.f::<unsafe extern "C" fn(Ptr)>(b"pa_context_unref\0")(self.ctx);
            self.f::<unsafe extern "C" fn(Ptr)>(b"pa_mainloop_free\0")(self.ml);
        }
    }
}

/// Little-endian f32 samples of `bytes`.
pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}
