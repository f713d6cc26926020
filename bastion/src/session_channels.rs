//! The `session` channels of a connection (what `ssh host` and `ssh -L` without `-N` open):
//! held open with a notice so the connection's tunnels keep working, never running anything.
//! A shell request gets the notice (with the destinations this login may open, from
//! `reachable`); Ctrl-C or Ctrl-D ends it; `exec` and `subsystem` (commands,
//! sftp, scp) are acknowledged, explained on stderr and exited with status 1, so the client
//! prints why instead of a bare failure; pty and window changes are harmless and accepted.

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use russh::server::Session;
use russh::ChannelId;

use crate::reachable::Reach;

/// The held session channels of one connection, and which of them showed the notice.
#[derive(Debug, Default)]
pub struct SessionChannels {
    open: HashSet<ChannelId>,
    shells: HashSet<ChannelId>,
}

/// What a byte of input on a shell means.
pub fn is_leave_key(data: &[u8]) -> bool {
    data.iter().any(|b| *b == 0x03 || *b == 0x04)
}

impl SessionChannels {
    pub fn opened(&mut self, channel: ChannelId) {
        self.open.insert(channel);
    }

    /// Session channels open now (they count toward `BASTION_MAX_CHANNELS`).
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    pub fn contains(&self, channel: ChannelId) -> bool {
        self.open.contains(&channel)
    }

    pub fn closed(&mut self, channel: ChannelId) {
        self.open.remove(&channel);
        self.shells.remove(&channel);
    }

    /// Accept a harmless request (pty, window change) on a held session.
    pub fn accept(&self, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        if self.contains(channel) {
            session.channel_success(channel)?;
        }
        Ok(())
    }

    /// Refuse a request (env, x11) on a held session.
    pub fn fail(&self, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        if self.contains(channel) {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    /// A shell: show the notice (what `reach` opens) and hold the channel.
    pub fn shell(
        &mut self,
        channel: ChannelId,
        reach: &Reach,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if self.contains(channel) {
            session.channel_success(channel)?;
            session.data(channel, reach.shell_notice())?;
            self.shells.insert(channel);
        }
        Ok(())
    }

    /// Input on a held shell: Ctrl-C / Ctrl-D leave; anything else is ignored.
    pub fn input(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if self.shells.contains(&channel) && is_leave_key(data) {
            session.data(channel, &b"\r\nBye.\r\n"[..])?;
            self.end(channel, 0, session)?;
        }
        Ok(())
    }

    /// exec/subsystem: nothing runs; tell the user on stderr, exit status 1, close.
    pub fn refuse_program(
        &mut self,
        channel: ChannelId,
        reach: &Reach,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if !self.contains(channel) {
            return Ok(());
        }
        // Acknowledge, explain on stderr (with what this login may open), exit 1: the client
        // prints the reason, instead of OpenSSH's bare "exec request failed on channel 0".
        session.channel_success(channel)?;
        session.extended_data(channel, 1, reach.no_commands())?;
        self.end(channel, 1, session)
    }

    fn end(
        &mut self,
        channel: ChannelId,
        status: u32,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        session.exit_status_request(channel, status)?;
        session.eof(channel)?;
        session.close(channel)?;
        self.closed(channel);
        Ok(())
    }
}
