//! The control side of srbd: everything a client talks to.
//!
//! | module | what it holds |
//! |---|---|
//! | [`server_info`] | [`server_info::ServerInfo`]: the server identity, sink and monitor, encoded by version (§6.3, §6.4) |
//! | [`alsa_props`] | the description and properties (`device.*`, `alsa.*`) of a sink or source on an ALSA device |
//! | [`capture_source`] | `--input alsa[:DEVICE]`: the `alsa_input.*` capture source (a capture engine listed as a source of its own) |
//! | [`server_loop`] | [`server_loop::ServerLoop`]: the one control thread's epoll loop over listeners, clients, srbchannel fd0s, the mixer's bell, signals and one timerfd; admission (`max_clients`, fd shortage) |
//! | [`client`] | [`client::Client`]: one connection on the loop (socket and ring input, deadlines, one round of serving it, how it ended) |
//! | [`dispatch`] | [`dispatch::COMMANDS`]: the command table (command → handler, allowed before AUTH or not) |
//! | [`server_cmds`] | LOAD/UNLOAD_MODULE, SUSPEND_SINK/SOURCE, MOVE_SINK_INPUT/SOURCE_OUTPUT, SEND_OBJECT_MESSAGE |
//! | [`sinks`] | [`sinks::Sinks`]: every sink ([`sinks::SinkEntry`]: records, mixer, volume/mute/suspend) and its monitor source, index allocation, name lookup, the default sink and source |
//! | [`routing`] | adding and removing sinks, moving streams between them, default changes that move unpinned streams |
//! | [`modules`] | [`modules::Modules`]: LOAD_MODULE / UNLOAD_MODULE / the config's `[[modules]]`, PulseAudio's argument syntax, `module-null-sink`, `module-loopback` |
//! | [`session`] | [`session::Session`]: one client's protocol state machine (AUTH, names, dispatch), without I/O |
//! | [`outbound`] | [`outbound::Outbound`]: where a connection's frames go (socket, or the srbchannel ring once acknowledged), and the ring's poll hooks |
//! | [`srbchannel`] | [`srbchannel::SrbLink`]: srbd's end of a client's srbchannel (sealed PA-layout memfd block, fd0/fd1, the offer, fdsem waking, hostile-block checks) |
//! | [`shm`] | the SHM fast path: per-connection memfd imports (REGISTER_MEMFD_SHMID), SHM reference validation, `pread` copies and RELEASE |
//! | [`client_cmds`] | AUTH, SET_CLIENT_NAME, REGISTER_MEMFD_SHMID, the srbchannel ack, SHM reference frames |
//! | [`limits`] | per-client deadlines, sizes and versions |
//! | [`introspect`] | info, lookup, volume, mute, default, kill and client-proplist commands |
//! | [`streams`] | stream commands (create, delete, drain, cork, flush, latency, attributes, rates, names, proplists) |
//! | [`playback`] / [`record`] | one stream's control side: request decoding and validation, flow control (REQUEST, STARTED, UNDERFLOW, drain replies), record delivery |
//! | [`registry`] | clients, sink inputs, source outputs, SUBSCRIBE event queues |
//! | [`device_state`] | each sink's and monitor's RUNNING / IDLE / SUSPENDED state as PulseAudio computes it from the streams, and its CHANGE events |
//! | [`sample_cache`] | [`sample_cache::SampleCache`]: cached sounds, their caps (total and per client), upload streams in progress |
//! | [`sample_player`] | PLAY_SAMPLE's server-owned sink inputs, fed to the mixer from the cached bytes |
//! | [`sample_cmds`] | the sample cache's commands: CREATE/DELETE/FINISH_UPLOAD_STREAM, PLAY_SAMPLE, REMOVE_SAMPLE, GET_SAMPLE_INFO(_LIST) |
//! | [`tcp`] | `--tcp`: the cookie TCP clients authenticate with |

pub mod alsa_props;
pub mod capture_source;
pub mod client;
pub mod client_cmds;
pub mod device_state;
pub mod dispatch;
pub mod introspect;
pub mod limits;
pub mod modules;
pub mod outbound;
pub mod playback;
pub mod record;
pub mod registry;
pub mod routing;
pub mod sample_cache;
pub mod sample_cmds;
pub mod sample_player;
pub mod server_cmds;
pub mod server_info;
pub mod server_loop;
pub mod session;
pub mod shm;
pub mod sinks;
pub mod srbchannel;
pub mod streams;
pub mod tcp;

#[cfg(test)]
mod loop_tests;
