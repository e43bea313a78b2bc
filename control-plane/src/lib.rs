//! The control plane: catalog and search, playback authorization, manifests, DRM licenses,
//! profiles and watch state, recommendations and telemetry. Not built yet: its issues build it.
