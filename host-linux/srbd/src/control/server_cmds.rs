//! Commands about the server's objects rather than one client's: modules
//! (LOAD_MODULE / UNLOAD_MODULE: srbd has none to load yet, so every name
//! is refused with a log line naming it), SUSPEND_SINK / SUSPEND_SOURCE,
//! MOVE_SINK_INPUT / MOVE_SOURCE_OUTPUT (to the one sink and source there
//! are), and SEND_OBJECT_MESSAGE (`/core list-handlers`). Their rows are
//! in [`crate::control::dispatch::COMMANDS`].

use srb_pulse::commands::{Command, PaError};
use srb_pulse::request::{DeviceRef, Request};
use srb_pulse::tagstruct::TagWriter;

use crate::control::dispatch::Call;
use crate::control::server_info::INVALID_INDEX;
use crate::control::session::{error, reply, HandleError, Session};

/// The message handlers srbd answers, as `/core list-handlers` lists them
/// (a JSON array of objects, the format `pactl list message-handlers`
/// reads).
const HANDLERS: &str = "[{\"name\":\"/core\",\"description\":\"Core message handler\"}]";

impl Session {
    /// The device a SUSPEND or MOVE names: `Ok(None)` for "every device"
    /// (index `0xFFFFFFFF`, no name: SUSPEND only).
    fn named_device(&self, monitor: bool, d: &DeviceRef) -> Result<Option<u32>, PaError> {
        let info = &self.server.info;
        let found = match (d.index, d.name.as_deref()) {
            (INVALID_INDEX, None) => return Ok(None),
            (INVALID_INDEX, Some(n)) if monitor => info.source_by_name(n),
            (INVALID_INDEX, Some(n)) => info.sink_by_name(n),
            (i, None) if monitor => (i == info.monitor.index).then_some(i),
            (i, None) => (i == info.sink.index).then_some(i),
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
                tracing::info!(
                    client = self.client_index,
                    module = %name,
                    argument = argument.as_deref().unwrap_or(""),
                    "LOAD_MODULE refused: srbd has no module of that name"
                );
                error(tag, PaError::ModInitFailed)
            }
            (Command::UnloadModule, Request::UnloadModule(index)) => {
                tracing::info!(
                    client = self.client_index,
                    index,
                    "UNLOAD_MODULE: no such module"
                );
                error(tag, PaError::NoEntity)
            }
            (
                cmd @ (Command::SuspendSink | Command::SuspendSource),
                Request::Suspend { device, suspend },
            ) => {
                let monitor = cmd == Command::SuspendSource;
                match self.named_device(monitor, &device) {
                    Err(e) => error(tag, e),
                    Ok(_) => {
                        // One device of each kind: "all" is that one.
                        self.server.set_suspended(monitor, suspend);
                        reply(tag)
                    }
                }
            }
            (
                cmd @ (Command::MoveSinkInput | Command::MoveSourceOutput),
                Request::MoveStream { index, device },
            ) => {
                let monitor = cmd == Command::MoveSourceOutput;
                let exists = if monitor {
                    self.server
                        .registry
                        .source_outputs()
                        .iter()
                        .any(|(i, _)| *i == index)
                } else {
                    self.server
                        .registry
                        .sink_inputs()
                        .iter()
                        .any(|(i, _)| *i == index)
                };
                match self.named_device(monitor, &device) {
                    _ if !exists => error(tag, PaError::NoEntity),
                    // Moving to where it is: done, as PulseAudio answers.
                    Ok(Some(_)) => reply(tag),
                    Ok(None) => error(tag, PaError::Invalid),
                    Err(e) => error(tag, e),
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
