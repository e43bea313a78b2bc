//! May this viewer play this title here, now, on this device? A pure function of the title's
//! licensing, the viewer and the clock, so every rule is tested without a database or socket.

use strata_contracts::api::control_plane::{Licensing, Refusal, Window};
use strata_contracts::config::control_plane::RenditionCeiling;

/// Who asks, from where, on what, when.
#[derive(Debug, Clone)]
pub struct Viewer<'a> {
    /// The account's subscription tier.
    pub tier: &'a str,
    /// The declared device class.
    pub device: &'a str,
    /// ISO country code, if the address could be placed.
    pub country: Option<&'a str>,
    /// Unix seconds.
    pub now: i64,
}

/// The classes the service knows, from config.
#[derive(Debug, Clone)]
pub struct Classes<'a> {
    /// Subscription tiers.
    pub tiers: &'a [RenditionCeiling],
    /// Device classes.
    pub devices: &'a [RenditionCeiling],
}

/// Decides a play: the tallest rendition allowed, or why not. Checks run in a fixed order,
/// so a viewer refused for several reasons always hears the same one: device class, tier,
/// device rules, country, time window, blackout.
pub fn decide(licensing: &Licensing, viewer: &Viewer<'_>, classes: &Classes<'_>) -> Result<u32, Refusal> {
    let device = classes
        .devices
        .iter()
        .find(|d| d.name == viewer.device)
        .ok_or(Refusal::UnknownDevice)?;
    // An account whose tier was removed from config is entitled to nothing.
    let tier = classes
        .tiers
        .iter()
        .find(|t| t.name == viewer.tier)
        .ok_or(Refusal::NotEntitled)?;
    if !licensing.tiers.is_empty() && !licensing.tiers.iter().any(|t| t == viewer.tier) {
        return Err(Refusal::NotEntitled);
    }
    if !licensing.devices.is_empty() && !licensing.devices.iter().any(|d| d == viewer.device) {
        return Err(Refusal::DeviceNotAllowed);
    }
    if !licensing.windows.is_empty() {
        let here: Vec<&Window> = licensing
            .windows
            .iter()
            .filter(|w| covers_country(w, viewer.country))
            .collect();
        if here.is_empty() {
            return Err(Refusal::GeoBlocked);
        }
        if !here.iter().any(|w| covers_time(w, viewer.now)) {
            return Err(Refusal::NotAvailable);
        }
    }
    if licensing
        .blackouts
        .iter()
        .any(|b| covers_country(b, viewer.country) && covers_time(b, viewer.now))
    {
        return Err(Refusal::Blackout);
    }
    Ok(tier.max_height.min(device.max_height))
}

/// A window with no countries covers everyone; one with countries covers only clients
/// placed in one of them (an unknown country is in none).
fn covers_country(w: &Window, country: Option<&str>) -> bool {
    w.countries.is_empty() || country.is_some_and(|c| w.countries.iter().any(|wc| wc.eq_ignore_ascii_case(c)))
}

fn covers_time(w: &Window, now: i64) -> bool {
    w.start.0 <= now && now < w.end.0
}

#[cfg(test)]
mod test {
    use super::*;
    use strata_contracts::api::control_plane::Timestamp;

    fn classes() -> (Vec<RenditionCeiling>, Vec<RenditionCeiling>) {
        let c = |n: &str, h| RenditionCeiling {
            name: n.into(),
            max_height: h,
        };
        (
            vec![c("basic", 540), c("premium", 2160)],
            vec![c("phone", 720), c("tv", 2160)],
        )
    }

    fn window(countries: &[&str], start: i64, end: i64) -> Window {
        Window {
            countries: countries.iter().map(|c| c.to_string()).collect(),
            start: Timestamp(start),
            end: Timestamp(end),
        }
    }

    fn check(
        l: &Licensing,
        tier: &str,
        device: &str,
        country: Option<&str>,
        now: i64,
    ) -> Result<u32, Refusal> {
        let (tiers, devices) = classes();
        let v = Viewer {
            tier,
            device,
            country,
            now,
        };
        decide(
            l,
            &v,
            &Classes {
                tiers: &tiers,
                devices: &devices,
            },
        )
    }

    #[test]
    fn no_rules_allow_everyone_up_to_the_lower_ceiling() {
        let l = Licensing::default();
        assert_eq!(check(&l, "basic", "tv", None, 0), Ok(540));
        assert_eq!(check(&l, "premium", "phone", None, 0), Ok(720));
        assert_eq!(check(&l, "premium", "tv", Some("GB"), 0), Ok(2160));
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let l = Licensing {
            windows: vec![window(&["GB", "NL"], 100, 200), window(&["US"], 300, 400)],
            tiers: vec!["premium".into()],
            devices: vec!["tv".into()],
            blackouts: vec![window(&["NL"], 150, 160)],
        };
        assert_eq!(check(&l, "premium", "tv", Some("GB"), 150), Ok(2160));
        assert_eq!(
            check(&l, "premium", "fridge", Some("GB"), 150),
            Err(Refusal::UnknownDevice)
        );
        assert_eq!(
            check(&l, "basic", "tv", Some("GB"), 150),
            Err(Refusal::NotEntitled)
        );
        assert_eq!(
            check(&l, "gold", "tv", Some("GB"), 150),
            Err(Refusal::NotEntitled)
        );
        assert_eq!(
            check(&l, "premium", "phone", Some("GB"), 150),
            Err(Refusal::DeviceNotAllowed)
        );
        assert_eq!(
            check(&l, "premium", "tv", Some("DE"), 150),
            Err(Refusal::GeoBlocked)
        );
        assert_eq!(check(&l, "premium", "tv", None, 150), Err(Refusal::GeoBlocked));
        assert_eq!(
            check(&l, "premium", "tv", Some("gb"), 200),
            Err(Refusal::NotAvailable)
        );
        assert_eq!(
            check(&l, "premium", "tv", Some("US"), 150),
            Err(Refusal::NotAvailable)
        );
        assert_eq!(check(&l, "premium", "tv", Some("US"), 350), Ok(2160));
        assert_eq!(
            check(&l, "premium", "tv", Some("NL"), 155),
            Err(Refusal::Blackout)
        );
        assert_eq!(check(&l, "premium", "tv", Some("NL"), 160), Ok(2160));
    }

    #[test]
    fn a_worldwide_blackout_applies_to_unknown_countries_too() {
        let l = Licensing {
            blackouts: vec![window(&[], 0, 10)],
            ..Default::default()
        };
        assert_eq!(check(&l, "basic", "tv", None, 5), Err(Refusal::Blackout));
        assert_eq!(check(&l, "basic", "tv", None, 10), Ok(540));
    }
}
