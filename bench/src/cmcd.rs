//! Common Media Client Data (CTA-5004) as a player sends it: keys in alphabetical order,
//! strings quoted, tokens bare, booleans as the key alone; as one `CMCD` query parameter or
//! split over the four `CMCD-*` headers. Pure.

/// How CMCD travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmcdMode {
    /// None sent.
    Off,
    /// One `CMCD=` query parameter.
    Query,
    /// `CMCD-Object`, `CMCD-Request`, `CMCD-Session`, `CMCD-Status` headers.
    Header,
}

/// Object type (`ot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// A manifest or playlist (`m`).
    Manifest,
    /// An init section (`i`).
    Init,
    /// Muxed audio and video (`av`).
    Muxed,
    /// Video only (`v`).
    Video,
    /// Audio only (`a`).
    Audio,
}

impl ObjectType {
    fn token(self) -> &'static str {
        match self {
            ObjectType::Manifest => "m",
            ObjectType::Init => "i",
            ObjectType::Muxed => "av",
            ObjectType::Video => "v",
            ObjectType::Audio => "a",
        }
    }
}

/// The data of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Cmcd {
    /// Encoded bitrate of the object, kbit/s (`br`).
    pub bitrate_kbps: Option<u64>,
    /// Buffer length, milliseconds, rounded to 100 ms (`bl`).
    pub buffer_ms: Option<u64>,
    /// Object duration, milliseconds (`d`).
    pub duration_ms: Option<u64>,
    /// Measured throughput, kbit/s, rounded to 100 (`mtp`).
    pub throughput_kbps: Option<u64>,
    /// Object type (`ot`).
    pub object: ObjectType,
    /// Session id (`sid`).
    pub session: String,
    /// Content id (`cid`).
    pub content: String,
    /// Whether the player is starting or rebuffering (`su`).
    pub startup: bool,
}

/// One encoded key.
struct Key {
    name: &'static str,
    value: Option<String>,
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn round(v: u64, to: u64) -> u64 {
    (v + to / 2) / to * to
}

impl Cmcd {
    /// Every key to send, with the header it belongs in.
    fn keys(&self) -> Vec<(&'static str, Key)> {
        let mut keys = Vec::new();
        let mut num = |header, name, v: Option<u64>| {
            if let Some(v) = v {
                keys.push((
                    header,
                    Key {
                        name,
                        value: Some(v.to_string()),
                    },
                ));
            }
        };
        num("CMCD-Object", "br", self.bitrate_kbps);
        num("CMCD-Request", "bl", self.buffer_ms.map(|b| round(b, 100)));
        num("CMCD-Object", "d", self.duration_ms);
        num("CMCD-Request", "mtp", self.throughput_kbps.map(|t| round(t, 100)));
        keys.push((
            "CMCD-Session",
            Key {
                name: "cid",
                value: Some(quoted(&self.content)),
            },
        ));
        keys.push((
            "CMCD-Object",
            Key {
                name: "ot",
                value: Some(self.object.token().into()),
            },
        ));
        keys.push((
            "CMCD-Session",
            Key {
                name: "sf",
                value: Some("h".into()),
            },
        ));
        keys.push((
            "CMCD-Session",
            Key {
                name: "sid",
                value: Some(quoted(&self.session)),
            },
        ));
        keys.push((
            "CMCD-Session",
            Key {
                name: "st",
                value: Some("v".into()),
            },
        ));
        if self.startup {
            keys.push((
                "CMCD-Request",
                Key {
                    name: "su",
                    value: None,
                },
            ));
        }
        keys.sort_by_key(|(_, k)| k.name);
        keys
    }

    fn join<'a>(keys: impl Iterator<Item = &'a Key>) -> String {
        keys.map(|k| match &k.value {
            Some(v) => format!("{}={v}", k.name),
            None => k.name.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
    }

    /// The value of the `CMCD` query parameter, not yet percent-encoded.
    pub fn query_value(&self) -> String {
        Self::join(self.keys().iter().map(|(_, k)| k))
    }

    /// The `CMCD-*` headers and their values (headers without a key are left out).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let keys = self.keys();
        ["CMCD-Object", "CMCD-Request", "CMCD-Session", "CMCD-Status"]
            .into_iter()
            .filter_map(|h| {
                let mine: Vec<&Key> = keys
                    .iter()
                    .filter(|(header, _)| *header == h)
                    .map(|(_, k)| k)
                    .collect();
                (!mine.is_empty()).then(|| (h, Self::join(mine.into_iter())))
            })
            .collect()
    }

    /// `url` with the `CMCD` query parameter added.
    pub fn add_to_url(&self, url: &str) -> String {
        let value = strata_contracts::query::encode(&self.query_value());
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}CMCD={value}")
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn sample() -> Cmcd {
        Cmcd {
            bitrate_kbps: Some(3200),
            buffer_ms: Some(21_349),
            duration_ms: Some(4004),
            throughput_kbps: Some(25_432),
            object: ObjectType::Muxed,
            session: "6e2fb550-c457-11e9-bb97-0800200c9a66".into(),
            content: "faec5fc2-ac30-11ea-bb37-0242ac130002".into(),
            startup: false,
        }
    }

    #[test]
    fn query_form_is_sorted_rounded_and_quoted_as_cta_5004_asks() {
        assert_eq!(
            sample().query_value(),
            "bl=21300,br=3200,cid=\"faec5fc2-ac30-11ea-bb37-0242ac130002\",d=4004,mtp=25400,ot=av,sf=h,\
             sid=\"6e2fb550-c457-11e9-bb97-0800200c9a66\",st=v"
        );
        let url = sample().add_to_url("http://e/t/seg.m4s?token=x");
        assert!(
            url.starts_with("http://e/t/seg.m4s?token=x&CMCD=bl%3D21300%2Cbr%3D3200%2Ccid%3D%22"),
            "{url}"
        );
    }

    #[test]
    fn startup_is_a_bare_key_and_headers_split_the_keys() {
        let mut c = sample();
        c.startup = true;
        c.throughput_kbps = None;
        let headers = c.headers();
        assert_eq!(
            headers,
            [
                ("CMCD-Object", "br=3200,d=4004,ot=av".to_string()),
                ("CMCD-Request", "bl=21300,su".to_string()),
                (
                    "CMCD-Session",
                    "cid=\"faec5fc2-ac30-11ea-bb37-0242ac130002\",sf=h,sid=\"6e2fb550-c457-11e9-bb97-0800200c9a66\",st=v"
                        .to_string()
                ),
            ]
        );
        assert!(c.query_value().ends_with(",su"), "{}", c.query_value());
    }
}
