//! # srb-linux: the Linux host of srb
//!
//! This crate will bind [`srb_core`] to Linux: sealed memfd blocks, eventfd
//! and futex implementations of [`srb_core::Notify`]/[`srb_core::Wait`],
//! fd passing with `SCM_RIGHTS`, the runtime-directory socket, channels
//! between processes, and the `srbd` daemon that serves unmodified libpulse
//! clients. None of that is implemented yet (see the project's issues); the
//! crate exists so the workspace and its dependency direction are in place.
