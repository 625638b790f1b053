//! `module-loopback` (placeholder until the rate-matched queue lands).

use super::{ModuleError, Owned};
use crate::Server;

/// The module's name.
pub const NAME: &str = "module-loopback";

/// A running loopback.
#[derive(Debug)]
pub struct Loopback;

impl Loopback {
    /// Stops it.
    pub fn stop(self, _server: &Server) {}
}

/// Loads a loopback.
pub fn load(_server: &Server, _argument: &str) -> Result<Owned, ModuleError> {
    Err(ModuleError::Init {
        module: NAME,
        why: "not built yet".into(),
    })
}
