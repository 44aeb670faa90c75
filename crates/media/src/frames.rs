//! Decoding one stream of a file from a seek point, on one thread.
//!
//! This serves editing, where many inputs are decoded at once (one per
//! worker, so one decoder thread each scales better than frame threads) and
//! every frame from the cut on is used. The analysis pipeline's
//! [`Decoder`](crate::Decoder) instead samples, counts damage and guards
//! frame sizes.

use std::path::Path;

use ffmpeg_next as ffmpeg;
use ffmpeg_next::{codec, decoder, format, frame, Packet};

use crate::packet::read_packet;

/// Decoded frames of one stream, in presentation order.
pub struct StreamDecoder {
    ictx: format::context::Input,
    dec: decoder::Opened,
    index: usize,
    pkt: Packet,
    eof_sent: bool,
    skip_bad_packets: bool,
}

impl StreamDecoder {
    /// Opens stream `index` of `path` with a single-threaded decoder. With
    /// `seek_us` (file time in microseconds), decoding starts at the
    /// keyframe at or before it. With `skip_bad_packets`, a packet the
    /// decoder refuses is skipped instead of ending decoding with its error.
    pub fn open(
        path: &Path,
        index: usize,
        seek_us: Option<i64>,
        skip_bad_packets: bool,
    ) -> Result<Self, ffmpeg::Error> {
        crate::init();
        let mut ictx = format::input(path)?;
        let stream = ictx.stream(index).ok_or(ffmpeg::Error::StreamNotFound)?;
        let mut ctx = codec::context::Context::from_parameters(stream.parameters())?;
        ctx.set_threading(codec::threading::Config::count(1));
        let id = ctx.id();
        let dec = ctx.decoder().open_as(id)?;
        if let Some(us) = seek_us {
            ictx.seek(us, ..us + 1)?;
        }
        Ok(Self {
            ictx,
            dec,
            index,
            pkt: Packet::empty(),
            eof_sent: false,
            skip_bad_packets,
        })
    }

    /// Decodes the next frame into `out`; `false` at the end of the stream.
    pub fn next(&mut self, out: &mut frame::Frame) -> Result<bool, ffmpeg::Error> {
        loop {
            match self.dec.receive_frame(out) {
                Ok(()) => return Ok(true),
                Err(ffmpeg::Error::Eof) => return Ok(false),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(e) => return Err(e),
            }
            if self.eof_sent {
                return Ok(false);
            }
            self.feed()?;
        }
    }

    /// Sends the decoder the stream's next packet, or the end of stream.
    fn feed(&mut self) -> Result<(), ffmpeg::Error> {
        loop {
            match read_packet(&mut self.pkt, &mut self.ictx) {
                Ok(()) if self.pkt.stream() == self.index => {
                    let sent = self.dec.send_packet(&self.pkt);
                    return self.tolerate(sent);
                }
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => {
                    self.eof_sent = true;
                    let sent = self.dec.send_eof();
                    return self.tolerate(sent);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn tolerate(&self, sent: Result<(), ffmpeg::Error>) -> Result<(), ffmpeg::Error> {
        match sent {
            Err(_) if self.skip_bad_packets => Ok(()),
            r => r,
        }
    }
}
