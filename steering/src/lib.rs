//! Steering: edge and multi-CDN selection per client, HLS/DASH Content Steering manifests,
//! and pre-warm orchestration across the fleet. Not built yet: the steering issue builds it.
