// Drive Debian's Firefox ESR through the offline edition, opened from disk, and print what it saw as JSON.
//
//   node tests/browser/offline_firefox.mjs FOLDER/diffusion-lab-offline.html FOLDER/any-other-file
//
// Called by tests/browser/test_offline.py, which judges the result (pixels against CPython included).
// puppeteer-core talks WebDriver BiDi to the Firefox at $FIREFOX (default /usr/bin/firefox-esr) and
// downloads no browser. Puppeteer turns security.fileuri.strict_origin_policy off by default, which lets a
// file:// page read other files and so hides exactly what breaks the offline edition: it is set back to
// Firefox's default, true, and the report says what the profile holds and whether the page could read
// the other file given (a page may always read itself).
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

import puppeteer from "puppeteer-core";

const READY_TIMEOUT_MS = 120_000;
const file = path.resolve(process.argv[2]);
const url = pathToFileURL(file).href;
const sibling = pathToFileURL(path.resolve(process.argv[3])).href;
const report = { requests: [], errors: [], views: {} };

function timeline(page) {
  page.on("console", (message) => message.type() === "error" && report.errors.push(message.text()));
  page.on("pageerror", (error) => report.errors.push(String(error)));
}

async function open(browser, address) {
  const page = await browser.newPage();
  timeline(page);
  await page.setRequestInterception(true);
  page.on("request", (request) => {
    report.requests.push(request.url().slice(0, 200));
    if (/^(file|data|blob):/.test(request.url())) request.continue();
    else request.abort();
  });
  await page.goto(address);
  await page.waitForSelector("body[data-ready='true']", { timeout: READY_TIMEOUT_MS });
  return page;
}

const canvas = (page, id) =>
  page.evaluate((id) => {
    const c = document.getElementById(id);
    const rgba = Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
    return { width: c.width, height: c.height, rgba };
  }, id);
const text = (page, selector) => page.$eval(selector, (element) => element.textContent);
const waitForText = (page, selector, part) =>
  page.waitForFunction((selector, part) => document.querySelector(selector).textContent.includes(part),
    { timeout: READY_TIMEOUT_MS }, selector, part);

async function byLabel(page, label) {
  const id = await page.evaluate((label) => {
    const found = [...document.querySelectorAll("label")].find((element) => element.textContent.trim() === label);
    return found && found.control ? found.control.id : null;
  }, label);
  if (!id) throw new Error(`no control labelled ${label}`);
  return `#${id}`;
}

const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: process.env.FIREFOX || "/usr/bin/firefox-esr",
  headless: true,
  extraPrefsFirefox: { "security.fileuri.strict_origin_policy": true },
});
try {
  const args = browser.process().spawnargs;
  const profile = args[args.indexOf("--profile") + 1];
  const pref = /user_pref\("security\.fileuri\.strict_origin_policy", (\w+)\);/.exec(
    readFileSync(path.join(profile, "user.js"), "utf8"));
  report.strictOriginPolicy = pref ? JSON.parse(pref[1]) : null;
  report.browser = await browser.version();

  const home = await open(browser, url);
  report.views.home = {
    title: await home.title(),
    links: await home.$$eval("main a", (links) => links.map((link) => [link.textContent.trim(), link.href])),
  };
  await home.close();

  // With Firefox's default policy a file:// page cannot read even the file next to it.
  // (On a page of its own, as the blocked read is logged as an error.)
  const probe = await browser.newPage();
  await probe.goto(url);
  report.siblingFetch = await probe.evaluate(async (sibling) => {
    try {
      await (await fetch(sibling)).arrayBuffer();
      return "allowed";
    } catch (error) {
      return "blocked";
    }
  }, sibling);
  await probe.close();

  const forward = await open(browser, `${url}?seed=3#forward`);
  const before = await canvas(forward, "frame");
  await forward.focus(await byLabel(forward, "Timestep"));
  await forward.keyboard.press("End");
  await waitForText(forward, "#readout", "t = 1000 of 1000");
  report.views.forward = { before, after: await canvas(forward, "frame"), readout: await text(forward, "#readout") };
  await forward.close();

  const reverse = await open(browser, `${url}?seed=4#reverse`);
  await reverse.click("#play");
  await waitForText(reverse, "#readout", "step 1000 of 1000");
  report.views.reverse = {
    frame: await canvas(reverse, "frame"),
    readout: await text(reverse, "#readout"),
    result: await text(reverse, "#result"),
  };
  await reverse.close();
} catch (error) {
  report.failure = String((error && error.stack) || error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
