//! The description and properties of a sink or source on an ALSA device,
//! as PulseAudio's `module-alsa-sink`/`-source` show them: what clients
//! and `pactl list` rely on (PulseAudio 16.1's `module-alsa-sink` on a
//! `pulse` plugin PCM, compared side by side, shows the same keys) (`device.description`, `device.class =
//! "sound"`, `device.api = "alsa"`, `device.string`, `alsa.*` where
//! alsa-lib knows them, the buffering figures).

use srb_pulse::tagstruct::Proplist;

use crate::engine::alsa::DeviceFacts;

/// The device's description, as PulseAudio's ALSA modules make it with no
/// profile: the card's name for a device on a card, else the PCM's name
/// (alsa-lib's, e.g. the whole `pulse` plugin name), else the device
/// string.
pub fn description(facts: &DeviceFacts) -> String {
    let info = facts.info.as_ref();
    info.and_then(|i| i.card_name.clone())
        .or_else(|| info.map(|i| i.name.clone()).filter(|n| !n.is_empty()))
        .unwrap_or_else(|| facts.name.clone())
}

/// The properties of the sink or source on `facts`' device (`description`
/// as its `device.description`).
pub fn props(facts: &DeviceFacts, description: &str) -> Proplist {
    let mut pairs: Vec<(&str, String)> = vec![
        ("device.description", description.to_owned()),
        ("device.class", "sound".into()),
        ("device.api", "alsa".into()),
        ("device.string", facts.name.clone()),
        ("device.icon_name", "audio-card".into()),
        ("device.access_mode", "serial".into()),
        ("alsa.class", "generic".into()),
        ("alsa.subclass", "generic-mix".into()),
    ];
    if let Some(t) = &facts.pcm_type {
        pairs.push(("srb.alsa.pcm_type", t.clone()));
    }
    if let Some(i) = &facts.info {
        pairs.push(("alsa.name", i.name.clone()));
        pairs.push(("alsa.id", i.id.clone()));
        pairs.push(("alsa.device", i.device.to_string()));
        pairs.push(("alsa.subdevice", i.subdevice.to_string()));
        pairs.push(("alsa.subdevice_name", i.subdevice_name.clone()));
        if let Some(c) = i.card {
            pairs.push(("alsa.card", c.to_string()));
        }
        if let Some(n) = &i.card_name {
            pairs.push(("alsa.card_name", n.clone()));
        }
        if let Some(n) = &i.long_card_name {
            pairs.push(("alsa.long_card_name", n.clone()));
        }
    }
    if let Some(n) = &facts.negotiated {
        let frame = n.frame_bytes();
        pairs.push((
            "alsa.resolution_bits",
            (n.format.sample_size().unwrap_or(0) * 8).to_string(),
        ));
        pairs.push((
            "device.buffering.buffer_size",
            (n.buffer_frames * frame).to_string(),
        ));
        pairs.push((
            "device.buffering.fragment_size",
            (n.period_frames * frame).to_string(),
        ));
    }
    let mut p = Proplist::new();
    for (k, v) in pairs {
        // Valid constant keys; a refused value only loses a property.
        if let Err(e) = p.set_str(k, &v) {
            tracing::warn!(key = k, %e, "property refused");
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::alsa::PcmInfo;

    #[test]
    fn card_and_plugin_devices() {
        let mut f = DeviceFacts {
            name: "hw:0".into(),
            negotiated: None,
            pcm_type: Some("hw".into()),
            info: Some(PcmInfo {
                id: "ALC".into(),
                name: "ALC Analog".into(),
                card: Some(0),
                card_name: Some("HDA Intel".into()),
                long_card_name: None,
                device: 0,
                subdevice: 0,
                subdevice_name: "subdevice #0".into(),
            }),
        };
        assert_eq!(description(&f), "HDA Intel");
        let p = props(&f, "d");
        assert_eq!(p.get_str("device.class"), Some("sound"));
        assert_eq!(p.get_str("device.api"), Some("alsa"));
        assert_eq!(p.get_str("device.string"), Some("hw:0"));
        assert_eq!(p.get_str("alsa.card"), Some("0"));
        assert_eq!(p.get_str("alsa.card_name"), Some("HDA Intel"));
        let mut plugin = f.info.clone().unwrap();
        plugin.card_name = None;
        f.info = Some(plugin);
        assert_eq!(description(&f), "ALC Analog");
        f.info = None;
        assert_eq!(description(&f), "hw:0");
    }
}
