//! Commands about the server's objects rather than one client's: modules
//! (LOAD_MODULE / UNLOAD_MODULE, [`crate::control::modules`]: a failure
//! is logged naming the module and what was wrong), SUSPEND_SINK /
//! SUSPEND_SOURCE, MOVE_SINK_INPUT / MOVE_SOURCE_OUTPUT
//! ([`crate::control::routing`]), and SEND_OBJECT_MESSAGE (`/core
//! list-handlers`). Their rows are in
//! [`crate::control::dispatch::COMMANDS`].

use srb_pulse::commands::{Command, PaError};
use srb_pulse::request::{DeviceRef, Request};
use srb_pulse::tagstruct::TagWriter;

use std::sync::Arc;

use crate::control::dispatch::Call;
use crate::control::modules;
use crate::control::server_info::INVALID_INDEX;
use crate::control::session::{error, reply, HandleError, Session};
use crate::control::sinks::SinkEntry;

/// The message handlers srbd answers, as `/core list-handlers` lists them
/// (a JSON array of objects, the format `pactl list message-handlers`
/// reads).
const HANDLERS: &str = "[{\"name\":\"/core\",\"description\":\"Core message handler\"}]";

impl Session {
    /// The device a SUSPEND or MOVE names: `Ok(None)` for "every device"
    /// (index `0xFFFFFFFF`, no name: SUSPEND only).
    fn named_device(
        &self,
        monitor: bool,
        d: &DeviceRef,
    ) -> Result<Option<Arc<SinkEntry>>, PaError> {
        let sinks = &self.server.sinks;
        let found = match (d.index, d.name.as_deref()) {
            (INVALID_INDEX, None) => return Ok(None),
            (INVALID_INDEX, Some(n)) if monitor => sinks.source(n),
            (INVALID_INDEX, Some(n)) => sinks.sink(n),
            (i, None) if monitor => sinks.by_source_index(i),
            (i, None) => sinks.by_index(i),
            _ => return Err(PaError::Invalid),
        };
        found.map(Some).ok_or(PaError::NoEntity)
    }

    /// Module, suspend, move and object-message commands.
    pub(super) fn on_server(
        &mut self,
        c: Call<'_>,
        req: Request,
    ) -> Result<Option<TagWriter>, HandleError> {
        let tag = c.tag;
        let w = match (c.cmd, req) {
            (Command::LoadModule, Request::LoadModule { name, argument }) => {
                let argument = argument.as_deref().unwrap_or("");
                match modules::load(&self.server, &name, argument) {
                    Ok(index) => {
                        let mut w = reply(tag);
                        w.put_u32(index);
                        w
                    }
                    Err(e) => {
                        tracing::warn!(
                            client = self.client_index,
                            module = %name,
                            argument,
                            %e,
                            "LOAD_MODULE failed"
                        );
                        error(tag, PaError::ModInitFailed)
                    }
                }
            }
            (Command::UnloadModule, Request::UnloadModule(index)) => {
                if modules::unload(&self.server, index) {
                    reply(tag)
                } else {
                    tracing::info!(
                        client = self.client_index,
                        index,
                        "UNLOAD_MODULE: no such module"
                    );
                    error(tag, PaError::NoEntity)
                }
            }
            (
                cmd @ (Command::SuspendSink | Command::SuspendSource),
                Request::Suspend { device, suspend },
            ) => {
                let monitor = cmd == Command::SuspendSource;
                match self.named_device(monitor, &device) {
                    Err(e) => error(tag, e),
                    Ok(Some(e)) => {
                        self.server.set_suspended(&e, monitor, suspend);
                        reply(tag)
                    }
                    Ok(None) => {
                        for e in self.server.sinks.all() {
                            self.server.set_suspended(&e, monitor, suspend);
                        }
                        reply(tag)
                    }
                }
            }
            (
                cmd @ (Command::MoveSinkInput | Command::MoveSourceOutput),
                Request::MoveStream { index, device },
            ) => {
                let monitor = cmd == Command::MoveSourceOutput;
                let moved = match self.named_device(monitor, &device) {
                    Ok(Some(to)) if monitor => self.server.move_source_output(index, &to),
                    Ok(Some(to)) => self.server.move_sink_input(index, &to),
                    Ok(None) => Err(PaError::Invalid),
                    Err(e) => Err(e),
                };
                match moved {
                    Ok(()) => reply(tag),
                    Err(e) => {
                        tracing::info!(
                            client = self.client_index,
                            index,
                            ?e,
                            monitor,
                            "move refused"
                        );
                        error(tag, e)
                    }
                }
            }
            (Command::SendObjectMessage, Request::ObjectMessage { path, message, .. }) => {
                match (path.as_str(), message.as_str()) {
                    ("/core", "list-handlers") => {
                        let mut w = reply(tag);
                        w.put_string(Some(HANDLERS));
                        w
                    }
                    ("/core", _) => error(tag, PaError::NotImplemented),
                    _ => error(tag, PaError::NoEntity),
                }
            }
            (cmd, _) => return Ok(self.unsupported(cmd, tag)),
        };
        Ok(Some(w))
    }
}
