//! The command decoders: CREATE_PLAYBACK_STREAM and CREATE_RECORD_STREAM
//! bodies at every protocol version srbd serves (13..=35), every other
//! command's body through `Request::decode` (srb-pulse), and whole
//! packet sequences through `Session::handle_packet` on an authorised,
//! named session of a real server (null output; its mixer thread runs in
//! this process), so every command's request parsing and state changes
//! are exercised. Nothing may panic; a malformed packet is an `Err` (the
//! connection would close), a bad request an `ERROR` reply.
//!
//! Input: byte 0 picks the mode and version, the rest is the body or a
//! sequence of packets, each prefixed by a 2-byte length.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use srb_pulse::tagstruct::{Proplist, TagReader, TagWriter};
use srb_pulse::commands::Command;
use srbd::control::session::Session;
use srbd::engine::mixer::{Engine, SinkConfig};
use srbd::engine::output::OutputSpec;
use srb_pulse::request::{CreatePlayback, CreateRecord, Request};
use srbd::control::server_info::ServerInfo;
use srbd::engine::notice::Notice;
use srbd::Server;

fn server() -> &'static Arc<Server> {
    static SERVER: OnceLock<Arc<Server>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let info = ServerInfo::new("fuzz".into(), "fuzz".into(), 1);
        let engine = Engine::start(SinkConfig {
            spec: info.sink.sample_spec,
            map: info.sink.channel_map.clone(),
            period_frames: 480,
            output: OutputSpec::Null,
        })
        .expect("engine");
        Arc::new(Server::new(info, engine))
    })
}

fn packet(cmd: Command, tag: u32, body: impl FnOnce(&mut TagWriter)) -> Vec<u8> {
    let mut w = TagWriter::command(cmd as u32, tag);
    body(&mut w);
    w.into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let version = 13 + u32::from(mode % 23);
    match mode / 23 % 3 {
        0 => {
            if let Ok(c) = CreatePlayback::parse(&mut TagReader::new(rest), version) {
                let _ = c.validate();
            }
            // Any command number, any body.
            if let Some((&cmd, body)) = rest.split_first() {
                if let Some(cmd) = Command::from_u32(u32::from(cmd)) {
                    let _ = Request::decode(cmd, &mut TagReader::new(body), version);
                }
            }
        }
        1 => {
            if let Ok(c) = CreateRecord::parse(&mut TagReader::new(rest), version) {
                let _ = c.validate();
            }
        }
        _ => {
            let srv = server().clone();
            let waker = Arc::new(Notice::new(srv.engine.bell().clone()));
            let mut s = Session::new(srv.clone(), srv.uid, waker);
            let auth = packet(Command::Auth, 0, |w| {
                w.put_u32(version).put_arbitrary(&[0; 256]);
            });
            assert!(s.handle_packet(&auth).expect("AUTH").is_some());
            let name = packet(Command::SetClientName, 1, |w| {
                let mut p = Proplist::new();
                p.set_str("application.name", "fuzz").unwrap();
                w.put_proplist(&p);
            });
            assert!(s.handle_packet(&name).expect("SET_CLIENT_NAME").is_some());
            let mut out = Vec::new();
            let mut at = rest;
            while at.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([at[0], at[1]]));
                let body = &at[2..];
                let p = &body[..len.min(body.len())];
                at = &body[p.len()..];
                if s.handle_packet(p).is_err() {
                    break;
                }
                if s.poll_streams(&mut out, usize::MAX).is_err() {
                    break;
                }
                out.clear();
            }
        }
    }
});
