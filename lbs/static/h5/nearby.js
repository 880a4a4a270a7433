// The nearby page after its first paint: refresh the list for where the user is now, and open
// WeChat's map for navigation. Everything here is optional; the server-rendered list works alone.
//
// Inside WeChat (window.wx, with a wx.config the server signed): wx.getLocation({type:'gcj02'})
// on load and on "refresh", since GCJ-02 is what our stores and wx.openLocation use (spec §7;
// the JS-SDK's default is WGS-84). Elsewhere: the browser's geolocation, which is WGS-84, so the
// API is asked with coord=wgs84 and converts on the server.
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var config = JSON.parse(document.getElementById("h5-config").textContent);
  var list = document.getElementById("stores");
  var statusLine = document.getElementById("status");
  var summary = document.getElementById("summary");
  var empty = document.getElementById("empty");
  var refreshButton = document.getElementById("refresh");
  var wxReady = false;
  var wxStarted = false;

  function setStatus(text) {
    statusLine.textContent = text;
  }

  function distanceText(metres) {
    // The same wording as lbs.nearby.distance_text, for the summary line.
    return metres < 1000 ? Math.max(1, Math.round(metres)) + "米" : (metres / 1000).toFixed(1) + "公里";
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    // textContent, never innerHTML: names and offers come from merchants.
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function storeItem(store, number) {
    var item = element("li", "store");
    item.id = "store-" + store.id;
    item.dataset.storeId = String(store.id);
    item.dataset.lat = String(store.lat);
    item.dataset.lng = String(store.lng);
    item.dataset.coord = store.coord;
    item.dataset.name = store.name;
    item.dataset.address = store.address;

    var head = element("div", "store-head");
    head.appendChild(element("span", "num", String(number)));
    head.appendChild(element("h2", "store-name", store.name));
    head.appendChild(element("span", "distance", store.distance_text));
    item.appendChild(head);

    var meta = element("p", "meta");
    meta.appendChild(element("span", "category", store.category.name));
    meta.appendChild(
      store.open_now
        ? element("span", "state state-open", "营业中")
        : element("span", "state state-closed", "已打烊")
    );
    meta.appendChild(element("span", "hours", store.opening_hours_text));
    item.appendChild(meta);

    if (store.best_offer) {
      var offer = element("p", "offer");
      offer.appendChild(element("strong", "offer-title", store.best_offer.title));
      offer.appendChild(document.createTextNode(" "));
      offer.appendChild(element("span", "offer-why", store.best_offer.explanation));
      item.appendChild(offer);
    }
    item.appendChild(element("p", "address", store.address));

    var actions = element("p", "actions");
    if (store.phone) {
      var phone = element("a", "link", "电话");
      phone.href = "tel:" + store.phone;
      actions.appendChild(phone);
    }
    if (store.category.code === "cinema") {  // as nearby.html: seats are booked on its page
      var book = element("a", "link", "选座购票");
      book.href = "/h5/cinema/" + encodeURIComponent(store.id);
      actions.appendChild(book);
    }
    var nav = element("button", "link nav", "导航");
    nav.type = "button";
    nav.hidden = !canNavigate(item);
    actions.appendChild(nav);
    item.appendChild(actions);
    return item;
  }

  // Mirrors lbs.pages.map_view: equirectangular around the user, north up, 15% margin beyond
  // the farthest store (at least 100 m), a scale bar of a round length up to 30% of the width.
  var M_PER_DEG = (6371008.8 * Math.PI) / 180;
  var SCALE_STEPS_M = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000];

  function layoutMap(width, height, lat, lng, stores, radiusM) {
    var cx = width / 2, cy = height / 2;
    var mPerDegLng = M_PER_DEG * Math.cos((lat * Math.PI) / 180);
    var offsets = stores.map(function (s) {
      return [(s.lng - lng) * mPerDegLng, (s.lat - lat) * M_PER_DEG];
    });
    var farthest = 0;
    offsets.forEach(function (o) { farthest = Math.max(farthest, Math.abs(o[0]), Math.abs(o[1])); });
    var extent = stores.length ? Math.max(farthest * 1.15, 100) : radiusM;
    var pxPerM = (Math.min(width, height) / 2 - 18) / extent;
    var bar = 10;
    SCALE_STEPS_M.forEach(function (m) { if (m * pxPerM <= width * 0.3) bar = m; });
    return {
      cx: cx,
      cy: cy,
      dots: offsets.map(function (o, i) {
        return { number: i + 1, storeId: stores[i].id, x: cx + o[0] * pxPerM, y: cy - o[1] * pxPerM };
      }),
      scaleX2: 12 + bar * pxPerM,
      scaleLabel: bar < 1000 ? bar + "米" : bar / 1000 + "公里",
    };
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function drawMap(lat, lng, stores) {
    var map = document.getElementById("map");
    var box = map.viewBox.baseVal;
    var layout = layoutMap(box.width, box.height, lat, lng, stores, config.radiusM);
    var me = map.querySelector(".map-me");
    me.setAttribute("cx", String(layout.cx));
    me.setAttribute("cy", String(layout.cy));
    var dots = map.querySelector(".map-dots");
    while (dots.firstChild) dots.removeChild(dots.firstChild);
    layout.dots.forEach(function (d) {
      var link = svg("a", { href: "#store-" + d.storeId, class: "map-dot", "data-store-id": d.storeId });
      link.appendChild(svg("circle", { cx: d.x.toFixed(1), cy: d.y.toFixed(1), r: 10 }));
      link.appendChild(
        svg("text", { x: d.x.toFixed(1), y: (d.y + 4).toFixed(1), "text-anchor": "middle" }, String(d.number))
      );
      dots.appendChild(link);
    });
    map.querySelector(".map-scale line").setAttribute("x2", layout.scaleX2.toFixed(1));
    map.querySelector(".map-scale text").textContent = layout.scaleLabel;
  }

  function render(lat, lng, stores) {
    while (list.firstChild) list.removeChild(list.firstChild);
    stores.forEach(function (store, i) { list.appendChild(storeItem(store, i + 1)); });
    empty.hidden = stores.length > 0;
    summary.textContent = distanceText(config.radiusM) + "内 " + stores.length + " 家";
    drawMap(lat, lng, stores);
  }

  function load(lat, lng, coord) {
    var params = new URLSearchParams({
      lat: String(lat),
      lng: String(lng),
      coord: coord,
      radius_m: String(config.radiusM),
      limit: String(config.limit),
    });
    if (config.category) params.set("category", config.category);
    setStatus("正在更新…");
    return fetch(config.apiUrl + "?" + params.toString(), { headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (body) {
        render(lat, lng, body.stores);
        setStatus("已按你当前的位置更新");
      })
      .catch(function () {
        setStatus("更新失败，请稍后再试");
      });
  }

  function locateWithWeChat() {
    window.wx.getLocation({
      type: "gcj02",
      success: function (res) { load(res.latitude, res.longitude, "gcj02"); },
      fail: function () { setStatus("未能获取你的位置"); },
      cancel: function () { setStatus("你没有允许获取位置"); },
    });
  }

  function locateWithBrowser() {
    if (!navigator.geolocation) {
      setStatus("这个浏览器不能获取位置");
      return;
    }
    setStatus("正在获取你的位置…");
    navigator.geolocation.getCurrentPosition(
      function (pos) { load(pos.coords.latitude, pos.coords.longitude, "wgs84"); },
      function () { setStatus("未能获取你的位置"); },
      { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 }
    );
  }

  // openLocation takes GCJ-02; a store listed after a WGS-84 refresh carries WGS-84 coordinates
  // and would be pinned ~360 m off in Chengdu, so it gets no button.
  function canNavigate(item) {
    return wxReady && item.dataset.coord === "gcj02";
  }

  function showNavButtons() {
    Array.prototype.forEach.call(list.querySelectorAll(".store"), function (item) {
      item.querySelector(".nav").hidden = !canNavigate(item);
    });
  }

  list.addEventListener("click", function (event) {
    var button = event.target.closest(".nav");
    if (!button) return;
    var item = button.closest(".store");
    if (!canNavigate(item)) return;
    window.wx.openLocation({
      latitude: parseFloat(item.dataset.lat),
      longitude: parseFloat(item.dataset.lng),
      name: item.dataset.name,
      address: item.dataset.address,
      scale: 16,
    });
  });

  refreshButton.addEventListener("click", function () {
    if (wxReady) locateWithWeChat();
    else locateWithBrowser();
  });

  function startWeChat() {
    if (wxStarted || !config.wx || !window.wx) return;
    wxStarted = true;
    var wx = window.wx;
    wx.config({
      debug: false,
      appId: config.wx.appId,
      timestamp: config.wx.timestamp,
      nonceStr: config.wx.nonceStr,
      signature: config.wx.signature,
      jsApiList: config.wx.jsApiList,
    });
    wx.ready(function () {
      wxReady = true;
      showNavButtons();
      locateWithWeChat();
    });
    // A refused signature (wrong domain, stale ticket): carry on with the browser's location.
    wx.error(function () { wxReady = false; });
  }

  var sdk = document.getElementById("jweixin");
  if (sdk) sdk.addEventListener("load", startWeChat);
  startWeChat();
})();
