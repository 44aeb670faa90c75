//! Encoders: H.264 (libx264, or NVENC) for annotated renders, normalised
//! segments and smart-cut pieces, and AAC for rendered audio. One place
//! decides how settings become encoder options, so every output made from
//! the same preset and CRF is encoded the same way.

use ffmpeg_next as ffmpeg;
use ffmpeg_next::{codec, encoder, format, ChannelLayout, Dictionary, Rational};

/// Why an encoder could not be opened; each message names the encoder.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// This FFmpeg build has no encoder of that name.
    #[error("encoder {0} not available")]
    NotFound(String),
    /// The encoder context could not be created for this kind of media.
    #[error("{codec}: {source}")]
    Setup {
        codec: String,
        source: ffmpeg::Error,
    },
    /// The encoder refused the settings (described in `settings`).
    #[error("{codec} ({settings}): {source}")]
    Open {
        codec: String,
        settings: String,
        source: ffmpeg::Error,
    },
}

impl From<EncoderError> for ffmpeg::Error {
    fn from(e: EncoderError) -> Self {
        match e {
            EncoderError::NotFound(_) => ffmpeg::Error::EncoderNotFound,
            EncoderError::Setup { source, .. } | EncoderError::Open { source, .. } => source,
        }
    }
}

/// What a video encoder is opened with.
#[derive(Debug, Clone)]
pub struct VideoEncoderConfig<'a> {
    /// FFmpeg encoder name: `libx264`, or an NVENC one (`h264_nvenc`).
    pub codec: &'a str,
    pub width: u32,
    pub height: u32,
    /// Input pixel format; a full-range one (`YUVJ420P`) marks the stream
    /// full range.
    pub format: format::Pixel,
    pub time_base: Rational,
    pub frame_rate: Rational,
    /// x264 preset name (mapped onto NVENC's p1..p7).
    pub preset: &'a str,
    /// x264 CRF (NVENC: constant quality).
    pub crf: u32,
    /// x264 threads; `None`: x264 chooses.
    pub threads: Option<usize>,
    /// Headers in the stream parameters (see
    /// [`wants_global_header`](crate::wants_global_header)) instead of in band.
    pub global_header: bool,
    /// Most B-frames in a row; `None`: the preset's.
    pub max_b_frames: Option<usize>,
    /// H.264 profile (`baseline`, `main`, `high`); `None`: the encoder's.
    pub profile: Option<&'a str>,
    /// H.264 `level_idc` (e.g. 30 for 3.0); `None`: the encoder's.
    pub level: Option<u8>,
    /// Sample aspect ratio written in the stream; `None`: unset (square).
    pub sar: Option<Rational>,
}

impl<'a> VideoEncoderConfig<'a> {
    /// 8-bit 4:2:0 video of `size` with in-band headers and the encoder's
    /// own threading, B-frames and profile.
    pub fn new(
        codec: &'a str,
        (width, height): (u32, u32),
        time_base: Rational,
        frame_rate: Rational,
        preset: &'a str,
        crf: u32,
    ) -> Self {
        Self {
            codec,
            width,
            height,
            format: format::Pixel::YUV420P,
            time_base,
            frame_rate,
            preset,
            crf,
            threads: None,
            global_header: false,
            max_b_frames: None,
            profile: None,
            level: None,
            sar: None,
        }
    }

    /// Opens the encoder.
    pub fn open(&self) -> Result<encoder::Video, EncoderError> {
        crate::init();
        let codec = encoder::find_by_name(self.codec)
            .ok_or_else(|| EncoderError::NotFound(self.codec.to_owned()))?;
        let mut enc = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|source| EncoderError::Setup {
                codec: self.codec.to_owned(),
                source,
            })?;
        enc.set_width(self.width);
        enc.set_height(self.height);
        enc.set_format(self.format);
        enc.set_time_base(self.time_base);
        enc.set_frame_rate(Some(self.frame_rate));
        if let Some(n) = self.max_b_frames {
            enc.set_max_b_frames(n);
        }
        if let Some(sar) = self.sar {
            enc.set_aspect_ratio(sar);
        }
        if self.format == format::Pixel::YUVJ420P {
            enc.set_color_range(ffmpeg::color::Range::JPEG);
        }
        if self.global_header {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        enc.open_with(self.options())
            .map_err(|source| EncoderError::Open {
                codec: self.codec.to_owned(),
                settings: format!("preset {}, crf {}", self.preset, self.crf),
                source,
            })
    }

    fn options(&self) -> Dictionary<'static> {
        let mut d = Dictionary::new();
        if self.codec.contains("nvenc") {
            d.set("preset", nvenc_preset(self.preset));
            d.set("rc", "vbr");
            d.set("cq", &self.crf.to_string());
            return d;
        }
        d.set("preset", self.preset);
        d.set("crf", &self.crf.to_string());
        if let Some(n) = self.threads {
            d.set("threads", &n.to_string());
        }
        if let Some(p) = self.profile {
            d.set("profile", p);
        }
        if let Some(l) = self.level {
            d.set("level", &l.to_string());
        }
        d
    }
}

/// Maps x264 preset names onto NVENC's p1 (fastest) .. p7 (best).
fn nvenc_preset(x264: &str) -> &str {
    match x264 {
        "ultrafast" | "superfast" => "p1",
        "veryfast" => "p2",
        "faster" => "p3",
        "fast" => "p4",
        "medium" => "p5",
        "slow" => "p6",
        "slower" | "veryslow" | "placebo" => "p7",
        other => other,
    }
}

/// Opens an AAC encoder for float planar samples at `rate` Hz, in timebase
/// `1/rate`.
pub fn open_aac_encoder(
    rate: i32,
    layout: ChannelLayout,
    bit_rate: usize,
    global_header: bool,
) -> Result<encoder::Audio, EncoderError> {
    crate::init();
    let codec =
        encoder::find(codec::Id::AAC).ok_or_else(|| EncoderError::NotFound("aac".into()))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(|source| EncoderError::Setup {
            codec: "aac".into(),
            source,
        })?;
    enc.set_rate(rate);
    enc.set_channel_layout(layout);
    enc.set_format(format::Sample::F32(format::sample::Type::Planar));
    enc.set_bit_rate(bit_rate);
    enc.set_time_base(Rational(1, rate));
    if global_header {
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    enc.open_as(codec).map_err(|source| EncoderError::Open {
        codec: "aac".into(),
        settings: format!("{bit_rate} bit/s"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvenc_presets_map_from_x264_names() {
        assert_eq!(nvenc_preset("veryfast"), "p2");
        assert_eq!(nvenc_preset("medium"), "p5");
        assert_eq!(nvenc_preset("p6"), "p6");
    }

    #[test]
    fn x264_options_carry_threads_and_profile_only_when_set() {
        let mut c = VideoEncoderConfig::new(
            "libx264",
            (64, 48),
            Rational(1, 25),
            Rational(25, 1),
            "fast",
            23,
        );
        let keys = |c: &VideoEncoderConfig| {
            c.options()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&c), ["preset=fast", "crf=23"]);
        c.threads = Some(1);
        c.profile = Some("high");
        assert_eq!(
            keys(&c),
            ["preset=fast", "crf=23", "threads=1", "profile=high"]
        );
        c.codec = "h264_nvenc";
        assert_eq!(keys(&c), ["preset=p4", "rc=vbr", "cq=23"]);
    }
}
