//! What a client does to its own connection: AUTH (with the SHM + memfd
//! offer, §1.4, §1.5), SET_CLIENT_NAME, REGISTER_MEMFD_SHMID (its memfd
//! pool), the ENABLE_SRBCHANNEL ack, and SHM reference frames (audio in
//! its pool, copied and released). The handlers' rows are in
//! [`crate::control::dispatch::COMMANDS`].

use crate::control::dispatch::Call;
use crate::control::session::{
    error, negotiate, offer_shm, reply, HandleError, Peer, Session, SrbEvent, AUTH_MEMFD, AUTH_SHM,
    MAX_CLIENT_PROPS, MIN_VERSION,
};
use crate::control::shm::{ShmError, ShmImports};
use srb_pulse::commands::PaError;
use srb_pulse::pstream::ShmRefFrame;
use srb_pulse::request::Request;
use srb_pulse::tagstruct::TagWriter;

impl Session {
    /// AUTH (§1.4): once only.
    pub(super) fn on_auth(
        &mut self,
        c: Call<'_>,
        req: Request,
    ) -> Result<Option<TagWriter>, HandleError> {
        let Request::Auth {
            version_and_flags,
            cookie,
        } = req
        else {
            return Ok(self.unsupported(c.cmd, c.tag));
        };
        if self.version.is_some() {
            return Ok(Some(error(c.tag, PaError::BadState)));
        }
        Ok(Some(self.auth(c.tag, version_and_flags, &cookie)))
    }

    /// SET_CLIENT_NAME: the client's proplist (at most
    /// [`MAX_CLIENT_PROPS`] bytes of packet).
    pub(super) fn on_set_client_name(
        &mut self,
        c: Call<'_>,
        req: Request,
    ) -> Result<Option<TagWriter>, HandleError> {
        let Request::SetClientName(props) = req else {
            return Ok(self.unsupported(c.cmd, c.tag));
        };
        if c.packet.len() > MAX_CLIENT_PROPS {
            tracing::warn!(
                client = self.client_index,
                len = c.packet.len(),
                max = MAX_CLIENT_PROPS,
                "client proplist too large; refused"
            );
            return Ok(Some(error(c.tag, PaError::TooLarge)));
        }
        let name = props
            .get_str("application.name")
            .unwrap_or("(unnamed)")
            .to_owned();
        if self.name.is_none() {
            tracing::info!(
                client = self.client_index,
                name = %name,
                version = c.version,
                "client ready"
            );
        }
        self.server.set_client(self.client_index, props);
        self.name = Some(name);
        let mut w = reply(c.tag);
        w.put_u32(self.client_index);
        Ok(Some(w))
    }

    /// REGISTER_MEMFD_SHMID: the client's pool (its fd came with the
    /// frame); no reply.
    pub(super) fn on_register_memfd_shmid(
        &mut self,
        c: Call<'_>,
        req: Request,
    ) -> Result<Option<TagWriter>, HandleError> {
        let Request::RegisterMemfdShmid(shm_id) = req else {
            return Ok(self.unsupported(c.cmd, c.tag));
        };
        self.register_memfd(shm_id)?;
        Ok(None)
    }

    /// ENABLE_SRBCHANNEL from the client: its ack (§5.2); no reply, the
    /// connection checks the tag against its offer.
    pub(super) fn on_enable_srbchannel(
        &mut self,
        c: Call<'_>,
        _req: Request,
    ) -> Result<Option<TagWriter>, HandleError> {
        self.srb_event = Some(SrbEvent::Ack(c.tag));
        Ok(None)
    }

    /// AUTH's decision: who may connect, the negotiated version, and
    /// whether SHM (and then the srbchannel) is offered.
    fn auth(&mut self, tag: u32, raw: u32, cookie: &[u8]) -> TagWriter {
        match &self.peer {
            Peer::Unix { uid } if *uid != self.server.uid && *uid != 0 => {
                tracing::warn!(peer_uid = uid, "AUTH refused: another user");
                return error(tag, PaError::Access);
            }
            Peer::Tcp {
                addr,
                cookie: Some(want),
            } if cookie != want.as_slice() => {
                tracing::warn!(%addr, "AUTH refused: wrong cookie");
                return error(tag, PaError::Access);
            }
            _ => {}
        }
        let version = negotiate(raw);
        if version < MIN_VERSION {
            tracing::warn!(client_version = raw, "AUTH refused: version too old");
            return error(tag, PaError::Version);
        }
        self.version = Some(version);
        let shm = offer_shm(raw, version, &self.peer, self.server.uid, self.server.shm);
        tracing::debug!(
            client = self.client_index,
            client_version = raw & 0xFFFF,
            client_shm = raw & AUTH_SHM != 0,
            client_memfd = raw & AUTH_MEMFD != 0,
            version,
            shm,
            "authorised"
        );
        let mut w = reply(tag);
        if shm {
            // The reply goes out before any later frame is handled, and
            // the decoder accepts SHM frames from the next frame on.
            self.shm = Some(ShmImports::new());
            w.put_u32(version | AUTH_SHM | AUTH_MEMFD);
            if self.server.srbchannel {
                self.srb_event = Some(SrbEvent::Offer);
            }
        } else {
            w.put_u32(version);
        }
        w
    }

    /// REGISTER_MEMFD_SHMID (command 103): `u32 shm_id`, no reply, exactly
    /// the one fd that came with the frame.
    pub(super) fn register_memfd(&mut self, shm_id: u32) -> Result<(), HandleError> {
        let fds = self.take_frame_fds();
        let client = self.client_index;
        let Some(imports) = self.shm.as_mut() else {
            return Err(ShmError::NotNegotiated.into());
        };
        let size = imports.register(shm_id, fds)?;
        tracing::debug!(
            client,
            shm_id,
            size,
            segments = imports.segment_count(),
            "memfd pool registered"
        );
        Ok(())
    }

    /// An SHM reference frame: copies the block into its playback stream
    /// like an inline memblock and sends RELEASE at once. A reference for
    /// a channel this client has no stream on (one just deleted or
    /// killed) is released unread.
    pub(super) fn shm_ref(&mut self, f: ShmRefFrame, out: &mut Vec<u8>) -> Result<(), HandleError> {
        let client = self.client_index;
        let frame = self.block_frame_size(f.channel);
        let Some(imports) = self.shm.as_mut() else {
            // The decoder refuses SHM frames unless SHM was negotiated.
            return Err(ShmError::NotNegotiated.into());
        };
        if !f.memfd {
            return Err(ShmError::PosixRef {
                block_id: f.shm.block_id,
                shm_id: f.shm.shm_id,
            }
            .into());
        }
        let Some(frame_size) = frame else {
            tracing::debug!(
                client,
                channel = f.channel,
                block_id = f.shm.block_id,
                "SHM reference for no stream of this client; released unread"
            );
            let release = imports.release(f.shm.block_id);
            self.releases.push(release, out)?;
            return Ok(());
        };
        imports.import(&f, frame_size, &mut self.shm_buf)?;
        let release = imports.release(f.shm.block_id);
        self.releases.push(release, out)?;
        if imports.stats().refs == 1 {
            tracing::debug!(
                client,
                channel = f.channel,
                len = self.shm_buf.len(),
                "first SHM reference imported"
            );
        }
        // Taken out for the call, put back after: the buffer is reused.
        let buf = std::mem::take(&mut self.shm_buf);
        let r = self.push_block(f.channel, f.offset, f.seek, &buf, out);
        self.shm_buf = buf;
        r
    }
}
