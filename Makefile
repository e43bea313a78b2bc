# The two commands of the README, and nothing clever.
.PHONY: demo test deps

# Start the whole CDN on this machine with sample content (made with ffmpeg on first run).
demo:
	.ci/install-deps demo
	cargo run --release --locked -- demo

# Run every test: unit tests and the end-to-end tests that start real processes on loopback.
test:
	.ci/install-deps test
	cargo test --workspace --locked

deps:
	.ci/install-deps test
