// Plays a manifest with a real player (hls.js or dash.js) in headless Chromium and prints
// one JSON line: {ok, currentTime, width, height, decodedFrames, droppedFrames, errors,
// mediaRequests}. Exit 0 when playback advanced past MIN_SECONDS without a fatal error.
//
// usage: node play.mjs <hls|dash> <manifest-url> [watch-seconds]
// It watches until the media has played watch-seconds less one (8 by default), or gives up.
// With H3_ORIGIN=host:port and H3_SPKI=<base64 SHA-256 of the certificate's SPKI> in the
// environment, Chromium is made to speak HTTP/3 to that origin (and to trust that one
// certificate), and the result also counts the protocols the media requests used
// (`protocols`, from the Resource Timing API's nextHopProtocol). `hosts` counts the
// requests made to each host:port (to see which edges a steered player used); `failed` lists
// (up to 20) requests the browser saw fail, with its reason.
// The page is served by Playwright itself as http://localhost:9 (nothing listens there), so
// every content request is cross-origin and CORS is exercised as for a real player site.
// localhost keeps the page a secure context, which Chromium's Local Network Access requires
// before a page may reach a loopback server at all.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const MIN_SECONDS = 2;
const [player, manifest, watch = '8'] = process.argv.slice(2);
if (!['hls', 'dash'].includes(player) || !manifest) {
  console.error('usage: node play.mjs <hls|dash> <manifest-url> [watch-seconds]');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const libs = {
  hls: path.join(here, 'node_modules/hls.js/dist/hls.min.js'),
  dash: path.join(here, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'),
};
// BUFFER_SECONDS caps how far ahead a player buffers (both default to far more than a
// short test title), so that a test can change things under a player mid-play.
const buffer = Number(process.env.BUFFER_SECONDS || 0);
const setup = {
  hls: `const hls = new Hls(${buffer ? `{ debug: false, maxBufferLength: ${buffer}, maxMaxBufferLength: ${buffer} }` : '{ debug: false }'});
        hls.on(Hls.Events.ERROR, (_, d) => { (d.fatal ? errors : warnings).push('hls: ' + d.type + ' ' + d.details); });
        for (const e of ['MEDIA_ATTACHED', 'MANIFEST_PARSED', 'LEVEL_LOADED', 'AUDIO_TRACK_LOADED', 'AUDIO_TRACK_SWITCHED', 'BUFFER_CODECS', 'BUFFER_CREATED',
                         'FRAG_LOADED', 'FRAG_PARSED', 'FRAG_BUFFERED', 'STEERING_MANIFEST_LOADED', 'LEVEL_SWITCHING', 'LEVEL_SWITCHED'])
          hls.on(Hls.Events[e], (_, d) => events.push(e + (d && d.frag ? ' ' + d.frag.type + ' ' + d.frag.sn : '')
            + (d && d.steeringManifest ? ' ' + d.steeringManifest['PATHWAY-PRIORITY'] : '') + (d && d.level !== undefined ? ' level ' + d.level : '')
            + ' @' + video.currentTime.toFixed(1)));
        hls.loadSource(MANIFEST); hls.attachMedia(video);`,
  dash: `const p = dashjs.MediaPlayer().create();
         p.on('error', e => errors.push('dash: ' + JSON.stringify(e.error || e).slice(0, 200)));
         ${buffer ? `p.updateSettings({ streaming: { buffer: { bufferTimeAtTopQuality: ${buffer}, bufferTimeAtTopQualityLongForm: ${buffer}, stableBufferTime: ${buffer} } } });` : ''}
         p.initialize(video, MANIFEST, true);`,
};
const page = `<!doctype html><html><body>
<video id="v" muted autoplay playsinline width="640"></video>
<script src="/player.js"></script>
<script>
  const MANIFEST = ${JSON.stringify(manifest)};
  const video = document.getElementById('v');
  const errors = [];
  const warnings = [];
  const events = [];
  video.addEventListener('error', () => errors.push('video: ' + (video.error && video.error.message)));
  ${setup[player]}
  window.state = () => {
    const q = video.getVideoPlaybackQuality();
    const protocols = {};
    for (const e of performance.getEntriesByType('resource')) {
      if (!e.name.startsWith(new URL(MANIFEST).origin)) continue;
      const p = e.nextHopProtocol || 'unknown';
      protocols[p] = (protocols[p] || 0) + 1;
    }
    return { currentTime: video.currentTime, width: video.videoWidth, height: video.videoHeight,
             decodedFrames: q.totalVideoFrames, droppedFrames: q.droppedVideoFrames, errors, protocols,
             warnings: warnings.slice(0, 20), events: events.slice(0, 40), readyState: video.readyState,
             buffered: Array.from({ length: video.buffered.length }, (_, i) => [video.buffered.start(i), video.buffered.end(i)]) };
  };
</script></body></html>`;

const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-chromium-'));
let ctx;
try {
  ctx = await chromium.launchPersistentContext(userData, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Chromium's Local Network Access: a public player page may reach a loopback CDN only
    // with the user's permission, granted here as a viewer would.
    permissions: ['local-network-access'],
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--autoplay-policy=no-user-gesture-required',
           ...(process.env.H3_ORIGIN
             ? ['--enable-quic', `--origin-to-force-quic-on=${process.env.H3_ORIGIN}`,
                `--ignore-certificate-errors-spki-list=${process.env.H3_SPKI}`]
             : ['--disable-quic'])],
  });
  const tab = await ctx.newPage();
  let mediaRequests = 0;
  const hosts = {};
  tab.on('request', r => {
    if (r.url().startsWith(new URL(manifest).origin)) mediaRequests++;
    const host = new URL(r.url()).host;
    hosts[host] = (hosts[host] || 0) + 1;
  });
  // Requests the browser itself saw fail (refused, reset, blocked, aborted), with its reason:
  // a failing test then says what the network did, not only that the player gave up.
  const failed = [];
  // Every answer a content host gave, in order (the page's own host aside): on a failure,
  // what the player asked for and got.
  const answers = [];
  tab.on('response', r => {
    const u = new URL(r.url());
    if (u.host !== 'localhost:9' && answers.length < 80) answers.push(`${u.host}${u.pathname} ${r.status()}`);
  });
  tab.on('requestfailed', r => {
    const u = new URL(r.url());
    if (failed.length < 20) failed.push(`${u.host}${u.pathname} ${r.failure()?.errorText}`);
  });
  await tab.route('http://localhost:9/**', route => {
    const url = new URL(route.request().url());
    if (url.pathname === '/player.js') {
      return route.fulfill({ body: fs.readFileSync(libs[player]), contentType: 'text/javascript' });
    }
    return route.fulfill({ body: page, contentType: 'text/html' });
  });
  await tab.goto('http://localhost:9/');
  // Watch until the player has played `watch` seconds less one for its start, or give up
  // after twice that plus 20 s: a slow machine delays the start, and a fixed wall-clock
  // wait would then fail a player that works.
  const target = Number(watch) - 1;
  const deadline = Date.now() + (2 * Number(watch) + 20) * 1000;
  let state;
  do {
    await tab.waitForTimeout(250);
    state = await tab.evaluate(() => window.state());
  } while (state.currentTime < target && Date.now() < deadline);
  const ok = state.currentTime > MIN_SECONDS && state.errors.length === 0 && state.width > 0;
  const detail = ok ? {} : { answers };
  if (ok) { delete state.warnings; delete state.events; }
  console.log(JSON.stringify({ ok, ...state, mediaRequests, hosts, failed, ...detail }));
  process.exitCode = ok ? 0 : 1;
} finally {
  if (ctx) await ctx.close();
  fs.rmSync(userData, { recursive: true, force: true });
}
