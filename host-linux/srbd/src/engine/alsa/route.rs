//! Where an ALSA PCM name leads, read from alsa-lib's configuration tree
//! without opening the device: the chain of plugin types from the name down
//! to its final slaves.
//!
//! Two questions are answered from it:
//!
//! * [`Route::to_sound_server`]: does any plugin on the way hand the audio
//!   to a sound server (`pulse`, `pipewire`)? Such a device is often ALSA's
//!   `default` on a desktop; opening it from srbd would loop audio back
//!   into a server (possibly srbd itself). The type is in the configuration,
//!   so no server is needed to see it (opening the `pulse` plugin fails
//!   when no server runs, and once open it only reports the generic
//!   `IOPLUG` type).
//! * [`Route::unpaced`]: do all final slaves discard or invent samples as
//!   fast as they are asked (`null`, e.g. under a `file` plugin)? Such a
//!   device has no clock; [`super::pacing`] clocks it.
//!
//! The walk follows what alsa-lib's own open follows: a definition that is
//! a string names another PCM; a compound's `slave.pcm` (a name or an
//! inline definition), `slaves.*.pcm` (multi), and for `asym` the
//! `playback.pcm` or `capture.pcm` of the direction asked for. Arguments
//! (`name:A=B`) and `@func`s are expanded by
//! `snd_config_search_definition`, as when opening.

use std::ffi::{CStr, CString};
use std::ptr;

use alsa::Direction;
use alsa_sys as sys;

/// Plugin types that hand the audio to a sound server.
pub const SOUND_SERVER_TYPES: [&str; 2] = ["pulse", "pipewire"];

/// Plugin types whose device takes or makes samples as fast as asked.
pub const UNPACED_TYPES: [&str; 1] = ["null"];

/// How deep the walk goes before giving up (a loop in the configuration).
const MAX_DEPTH: usize = 16;

/// The plugin chain behind a PCM name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    /// Every plugin type met, from the name down (depth first).
    pub types: Vec<String>,
    /// The types of the final slaves (plugins without a slave).
    pub leaves: Vec<String>,
}

impl Route {
    /// Whether a plugin on the way routes to a sound server
    /// ([`SOUND_SERVER_TYPES`]); the first such type.
    pub fn to_sound_server(&self) -> Option<&str> {
        self.types
            .iter()
            .map(String::as_str)
            .find(|t| SOUND_SERVER_TYPES.contains(t))
    }

    /// Whether every final slave is unpaced ([`UNPACED_TYPES`]).
    pub fn unpaced(&self) -> bool {
        !self.leaves.is_empty()
            && self
                .leaves
                .iter()
                .all(|t| UNPACED_TYPES.contains(&t.as_str()))
    }

    /// The outermost plugin type (what the name itself is).
    pub fn pcm_type(&self) -> Option<&str> {
        self.types.first().map(String::as_str)
    }
}

/// Why a route could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The name holds a NUL byte.
    #[error("ALSA device name {0:?} holds a NUL byte")]
    BadName(String),
    /// alsa-lib's configuration could not be loaded.
    #[error("ALSA configuration: {0}")]
    Config(String),
    /// No definition of that PCM (or of a slave it names).
    #[error("no ALSA PCM definition for {name:?} (error {errno})")]
    Undefined {
        /// The PCM name looked up.
        name: String,
        /// alsa-lib's negative errno.
        errno: i32,
    },
    /// The definitions loop or nest deeper than the walk goes.
    #[error("ALSA PCM {0:?}: slaves nest deeper than {MAX_DEPTH}")]
    TooDeep(String),
}

/// The plugin chain behind `name` for `dir`, from alsa-lib's configuration
/// (the files it loads: `ALSA_CONFIG_PATH` or its defaults).
pub fn route(name: &str, dir: Direction) -> Result<Route, RouteError> {
    let top = Top::load()?;
    let mut out = Route::default();
    top.walk_name(name, dir, 0, &mut out)?;
    Ok(out)
}

/// A reference to the global configuration tree.
struct Top(*mut sys::snd_config_t);

impl Top {
    fn load() -> Result<Self, RouteError> {
        let mut top = ptr::null_mut();
        // SAFETY: `top` is a valid out-pointer; on success alsa-lib hands us
        // one reference to the tree, released in Drop.
        let err = unsafe { sys::snd_config_update_ref(&mut top) };
        if err < 0 || top.is_null() {
            return Err(RouteError::Config(format!("snd_config_update_ref: {err}")));
        }
        Ok(Self(top))
    }

    fn walk_name(
        &self,
        name: &str,
        dir: Direction,
        depth: usize,
        out: &mut Route,
    ) -> Result<(), RouteError> {
        // The depth is checked by walk_node, which every recursion passes.
        let c_name = CString::new(name).map_err(|_| RouteError::BadName(name.to_owned()))?;
        let mut conf = ptr::null_mut();
        // SAFETY: `self.0` is a live tree we hold a reference to; the key
        // strings are NUL-terminated; `conf` is a valid out-pointer.
        let err = unsafe {
            sys::snd_config_search_definition(self.0, c"pcm".as_ptr(), c_name.as_ptr(), &mut conf)
        };
        if err < 0 || conf.is_null() {
            return Err(RouteError::Undefined {
                name: name.to_owned(),
                errno: err,
            });
        }
        let conf = Expanded(conf);
        self.walk_node(conf.0, name, dir, depth + 1, out)
    }

    fn walk_node(
        &self,
        node: *mut sys::snd_config_t,
        name: &str,
        dir: Direction,
        depth: usize,
        out: &mut Route,
    ) -> Result<(), RouteError> {
        if depth > MAX_DEPTH {
            return Err(RouteError::TooDeep(name.to_owned()));
        }
        if let Some(alias) = string(node) {
            return self.walk_name(&alias, dir, depth, out);
        }
        let Some(ty) = child(node, c"type").and_then(string) else {
            return Ok(());
        };
        out.types.push(ty.clone());
        let mut slaves = Vec::new();
        let dir_key = match dir {
            Direction::Playback => c"playback.pcm",
            Direction::Capture => c"capture.pcm",
        };
        for key in [c"slave.pcm", dir_key] {
            slaves.extend(child(node, key));
        }
        if let Some(multi) = child(node, c"slaves") {
            for_each_child(multi, |s| slaves.extend(child(s, c"pcm")));
        }
        if slaves.is_empty() {
            out.leaves.push(ty);
        }
        for s in slaves {
            self.walk_node(s, name, dir, depth + 1, out)?;
        }
        Ok(())
    }
}

impl Drop for Top {
    fn drop(&mut self) {
        // SAFETY: we own one reference, taken in `load`.
        unsafe { sys::snd_config_unref(self.0) };
    }
}

/// A definition expanded by `snd_config_search_definition`: ours to delete.
struct Expanded(*mut sys::snd_config_t);

impl Drop for Expanded {
    fn drop(&mut self) {
        // SAFETY: alsa-lib returned this expanded copy for the caller to
        // delete (its own open does the same); nothing points into it after
        // the walk.
        unsafe { sys::snd_config_delete(self.0) };
    }
}

/// The child of `node` at the (dotted) `key`, if any.
fn child(node: *mut sys::snd_config_t, key: &CStr) -> Option<*mut sys::snd_config_t> {
    let mut out = ptr::null_mut();
    // SAFETY: `node` is a live node of a tree we hold; `key` is
    // NUL-terminated; `out` is a valid out-pointer.
    let err = unsafe { sys::snd_config_search(node, key.as_ptr(), &mut out) };
    (err >= 0 && !out.is_null()).then_some(out)
}

/// The node's value if it is a string.
fn string(node: *mut sys::snd_config_t) -> Option<String> {
    // SAFETY: `node` is a live node of a tree we hold.
    if unsafe { sys::snd_config_get_type(node) } != sys::SND_CONFIG_TYPE_STRING {
        return None;
    }
    let mut s = ptr::null();
    // SAFETY: `node` is a live string node; `s` is a valid out-pointer.
    let err = unsafe { sys::snd_config_get_string(node, &mut s) };
    if err < 0 || s.is_null() {
        return None;
    }
    // SAFETY: alsa-lib returned a NUL-terminated string owned by the node,
    // which outlives this copy.
    Some(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

/// Calls `f` on each child of a compound `node`.
fn for_each_child(node: *mut sys::snd_config_t, mut f: impl FnMut(*mut sys::snd_config_t)) {
    // SAFETY: `node` is a live node of a tree we hold.
    if unsafe { sys::snd_config_get_type(node) } != sys::SND_CONFIG_TYPE_COMPOUND {
        return;
    }
    // SAFETY: iterating a live compound node with alsa-lib's own iterator
    // calls; the tree is not modified during the loop.
    unsafe {
        let end = sys::snd_config_iterator_end(node);
        let mut it = sys::snd_config_iterator_first(node);
        while it != end {
            f(sys::snd_config_iterator_entry(it));
            it = sys::snd_config_iterator_next(it);
        }
    }
}
