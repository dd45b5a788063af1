//! The pages in a real browser: headless Chromium, driven over WebDriver (chromedriver), against
//! a real server. The map must draw parcels from landdb's own vector tiles, and a click on a
//! parcel must show its attributes. A screenshot of the map is kept in
//! `target/browser/map.png` for a person to look at.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use landdb_tests::http::{get, samples, server};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process, stopped when dropped.
struct Driver {
    process: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("address").port();
    let process = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts (tools/setup installs it)");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { process, url }
}

/// One browser session.
struct Session {
    client: reqwest::Client,
    url: String,
    profile: std::path::PathBuf,
}

impl Session {
    async fn start(driver: &Driver) -> Session {
        let client = reqwest::Client::new();
        // A profile of its own: two browsers on one profile would be one browser.
        static SESSIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = std::env::temp_dir().join(format!("landdb-chromium-{}-{n}", std::process::id()));
        // WebGL through SwiftShader (no GPU here); no background traffic on a closed network.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-unsafe-swiftshader",
            "--use-angle=swiftshader",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1000,700",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let body = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        } } });
        let answer: Value = client
            .post(format!("{}/session", driver.url))
            .json(&body)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session JSON");
        let id = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_owned();
        Session { client, url: format!("{}/session/{id}", driver.url), profile }
    }

    async fn command(&self, path: &str, body: Value) -> Value {
        let answer: Value = self
            .client
            .post(format!("{}/{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("command")
            .json()
            .await
            .expect("answer");
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.command("url", json!({ "url": url })).await;
    }

    async fn script(&self, script: &str) -> Value {
        self.command("execute/sync", json!({ "script": script, "args": [] })).await
    }

    /// Waits until `script` returns something truthy; returns it.
    async fn until(&self, script: &str, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.script(script).await;
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return v;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "waited 30 s for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A real click at a position in the viewport.
    async fn click(&self, x: i64, y: i64) {
        let actions = json!({ "actions": [{
            "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
            "actions": [
                { "type": "pointerMove", "duration": 0, "origin": "viewport", "x": x, "y": y },
                { "type": "pointerDown", "button": 0 },
                { "type": "pause", "duration": 50 },
                { "type": "pointerUp", "button": 0 },
            ],
        }] });
        self.command("actions", actions).await;
    }

    /// The element a CSS selector finds.
    async fn element(&self, selector: &str) -> String {
        let found = self.command("element", json!({ "using": "css selector", "value": selector })).await;
        found["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("no {selector}: {found}"))
            .to_owned()
    }

    async fn screenshot(&self) -> Vec<u8> {
        let answer: Value = self
            .client
            .get(format!("{}/screenshot", self.url))
            .send()
            .await
            .expect("screenshot")
            .json()
            .await
            .expect("JSON");
        base64::engine::general_purpose::STANDARD.decode(answer["value"].as_str().expect("PNG")).expect("base64")
    }

    async fn end(self) {
        let _ = self.client.delete(&self.url).send().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_draws_parcels_from_vector_tiles_and_shows_a_clicked_one() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let driver = driver().await;
    let session = Session::start(&driver).await;
    session.open(&format!("{}/map#key={}", s.base, landdb_tests::http::OPERATOR_KEY)).await;
    session.until("return document.body.dataset.mapReady === '1'", "the map to load its tiles").await;

    // Parcels drawn from the tiles: find one under a pixel of the map.
    let hit = session
        .until(
            "const m = window.landdbMap; const c = m.getCanvas(); const r = c.getBoundingClientRect();
             for (let y = 20; y < r.height; y += 15) for (let x = 20; x < r.width; x += 15) {
               const f = m.queryRenderedFeatures([x, y], { layers: ['parcels-fill'] });
               if (f.length) return [Math.round(r.left + x), Math.round(r.top + y), f[0].properties.id, f.length];
             }
             return null;",
            "a parcel drawn on the map",
        )
        .await;
    let (x, y, id) = (hit[0].as_i64().expect("x"), hit[1].as_i64().expect("y"), hit[2].as_i64().expect("id"));
    let drawn =
        session.script("return window.landdbMap.queryRenderedFeatures({ layers: ['parcels-fill'] }).length").await;
    assert!(drawn.as_u64().expect("count") > 10, "parcels on screen: {drawn}");
    // The commune's outline, served by landdb, drawn beneath them.
    let outlined = session
        .until(
            "const f = window.landdbMap.queryRenderedFeatures({ layers: ['communes-line'] });
             return f.length ? f.map(x => x.properties.code) : null;",
            "the commune's outline drawn",
        )
        .await;
    assert!(outlined.to_string().contains("20194"), "outlines drawn: {outlined}");

    // A real click on it shows its attributes, as the API has them.
    session.click(x, y).await;
    let (status, _, feature) = get(&format!("{}/collections/parcels/items/{id}", s.base)).await;
    assert_eq!(status, 200);
    let (number, sheet) = (
        feature["properties"]["number"].as_str().expect("number").to_owned(),
        feature["properties"]["sheet"].as_str().expect("sheet").to_owned(),
    );
    let panel = session
        .until(
            &format!(
                "const t = document.getElementById('parcel-panel').innerText;
                 return t.includes('{}') && t.includes('{number}') && t.includes('{sheet}') ? t : null;",
                feature["properties"]["national_id"].as_str().expect("national id")
            ),
            "the clicked parcel's attributes in the panel",
        )
        .await;
    assert!(panel.as_str().expect("text").contains(&number), "{panel}");

    let png = session.screenshot().await;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("map.png"), &png).expect("screenshot written");
    session.end().await;
}

/// A province officer's upload: pick the file, send it, watch the job finish, read the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_page_runs_a_job_and_shows_its_report() {
    let s = server(&[samples().join("20197.geojson")]).await;
    let driver = driver().await;
    let session = Session::start(&driver).await;
    session.open(&format!("{}/upload#key={}", s.base, landdb_tests::http::OPERATOR_KEY)).await;
    let dirty = samples().join("../dirty-geojson/20194.geojson").canonicalize().expect("sample");
    let input = session.element("#file").await;
    session.command(&format!("element/{input}/value"), json!({ "text": dirty.display().to_string() })).await;
    let submit = session.element("#submit").await;
    session.until("return !document.getElementById('submit').disabled", "the upload button").await;
    session.command(&format!("element/{submit}/click"), json!({})).await;
    let state = session
        .until(
            "const s = document.getElementById('job-state').textContent;
             return s === 'succeeded' || s === 'failed' ? s : null;",
            "the job to finish",
        )
        .await;
    assert_eq!(state, "succeeded");
    let id = session.script("return document.getElementById('job-id').textContent").await;
    let (_, _, job) = get(&format!("{}/jobs/{}", s.base, id.as_str().expect("id"))).await;
    let counts = session.script("return document.getElementById('job-counts').innerText").await;
    let counts = counts.as_str().expect("counts");
    for key in ["input", "rejected", "accepted"] {
        let n = job["report"][key].as_u64().expect("count").to_string();
        assert!(counts.contains(&n), "{key} = {n} in {counts}");
    }
    session.end().await;
}

/// The landing page shows what the store holds for the caller's key, on a desktop and on a phone
/// (nothing wider than the screen), with a link to browse each collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_page_shows_what_the_key_sees_on_a_desktop_and_a_phone() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let (_, _, page) = get(&format!("{}/collections/parcels/items?limit=1", s.base)).await;
    let parcels = page["numberMatched"].as_u64().expect("numberMatched");
    let driver = driver().await;
    let session = Session::start(&driver).await;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
    std::fs::create_dir_all(&dir).expect("dir");
    for (width, height, name) in [(1280, 800, "landing.png"), (390, 844, "landing-phone.png")] {
        session.command("window/rect", json!({ "width": width, "height": height })).await;
        session.open(&format!("{}/#key={}", s.base, landdb_tests::http::OPERATOR_KEY)).await;
        session.until("return document.getElementById('holdings').dataset.ready === 'true'", "the holdings").await;
        let figure = session
            .script(
                "return document.querySelector('[data-collection=parcels] .figure').textContent.replace(/\\D/g, '')",
            )
            .await;
        assert_eq!(figure.as_str(), Some(parcels.to_string().as_str()), "the parcels the key sees");
        let browse = session.script("return document.querySelector('[data-collection=communes] nav a').href").await;
        assert!(browse.as_str().is_some_and(|h| h.ends_with("/collections/communes/items?f=html")), "{browse}");
        let overflow = session.script("return document.documentElement.scrollWidth - window.innerWidth").await;
        assert!(overflow.as_i64().expect("pixels") <= 0, "{name}: wider than the screen by {overflow} px");
        std::fs::write(dir.join(name), session.screenshot().await).expect("screenshot written");
    }
    session.end().await;
}

/// The map opens on the data the key sees, and its search finds a parcel by key, by national ID
/// and by a point in WGS84 and in its VN-2000 zone: drawn under the middle of the map, with the
/// details panel beside or below the map and never over it, on a desktop and on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_search_flies_to_the_parcel_and_the_panel_stays_off_the_map() {
    let s = server(&[samples().join("20194.geojson")]).await;
    let (_, _, page) = get(&format!("{}/collections/parcels/items?limit=1&sortby=-area_m2", s.base)).await;
    let feature = &page["features"][0];
    let id = feature["id"].as_i64().expect("id");
    let p = &feature["properties"];
    let key = format!(
        "{}/{}/{}",
        p["commune"].as_str().expect("c"),
        p["sheet"].as_str().expect("s"),
        p["number"].as_str().expect("n")
    );
    let national_id = p["national_id"].as_str().expect("national id").to_owned();
    // A point inside it: the centre of a tiny box around its first vertex that the API says is
    // inside, found by asking.
    let ring = feature["geometry"]["coordinates"][0][0].as_array().expect("ring").clone();
    let (mut lon, mut lat) = (0.0, 0.0);
    for c in &ring[..ring.len() - 1] {
        lon += c[0].as_f64().expect("x") / (ring.len() - 1) as f64;
        lat += c[1].as_f64().expect("y") / (ring.len() - 1) as f64;
    }
    let (_, _, at) = get(&format!("{}/parcels/at?lon={lon}&lat={lat}", s.base)).await;
    let point = if at["features"][0]["id"].as_i64() == Some(id) { Some(format!("{lon:.7},{lat:.7}")) } else { None };

    let driver = driver().await;
    let session = Session::start(&driver).await;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
    std::fs::create_dir_all(&dir).expect("dir");
    for (width, height, name) in [(1280, 800, "search.png"), (390, 844, "search-phone.png")] {
        session.command("window/rect", json!({ "width": width, "height": height })).await;
        session.open(&format!("{}/map#key={}", s.base, landdb_tests::http::OPERATOR_KEY)).await;
        session.until("return document.body.dataset.mapReady === '1'", "the map").await;
        let drawn =
            session.script("return window.landdbMap.queryRenderedFeatures({ layers: ['parcels-fill'] }).length").await;
        assert!(drawn.as_u64().expect("count") > 10, "{name}: opened on the data ({drawn} parcels drawn)");
        let mut searches = vec![key.clone(), national_id.clone()];
        searches.extend(point.clone());
        for text in &searches {
            session
                .script(&format!(
                    "document.getElementById('search-text').value = {text:?};
                     document.getElementById('search').requestSubmit(); return true;"
                ))
                .await;
            let found = session.until("return document.body.dataset.searchDone || null", "the search").await;
            assert_eq!(found.as_str(), Some(id.to_string().as_str()), "{name}: {text}");
            let under = session
                .script(&format!(
                    "const m = window.landdbMap; const r = m.getCanvas().getBoundingClientRect();
                     const hit = m.queryRenderedFeatures([r.width / 2, r.height / 2], {{ layers: ['parcels-fill'] }});
                     const p = document.getElementById('parcel-panel').getBoundingClientRect();
                     const apart = p.right <= r.left || p.left >= r.right || p.bottom <= r.top || p.top >= r.bottom;
                     return [hit.some((f) => f.properties.id === {id}), apart,
                             document.getElementById('parcel-info').innerText.includes({national_id:?})];"
                ))
                .await;
            assert_eq!(
                under,
                json!([true, true, true]),
                "{name}: {text}: parcel under the middle, panel apart, details shown"
            );
        }
        std::fs::write(dir.join(name), session.screenshot().await).expect("screenshot written");
    }
    session.end().await;
}
