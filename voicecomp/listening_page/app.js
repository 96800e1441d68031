/* Listening-test page of a voicecomp kit (voicecomp/listening.py writes clips.js beside it).

   Static: no server and no network; works from file:// and any static host.  The page knows
   only anonymous clip ids and their lengths in frames.  Each participant gets
   KIT.per_participant clips of every length, drawn and shuffled with a seeded generator (the
   seed is random per participant, or ?seed=N, and is recorded with the order), plays each
   clip, answers "human" or "computer", and downloads the answers as JSON at the end. */
(function () {
  "use strict";

  var KIT = window.VOICECOMP_KIT;
  var FORMAT = "voicecomp-listening-answers";
  var $ = function (id) { return document.getElementById(id); };

  // mulberry32: a small seeded generator, so an order can be reproduced from its seed.
  function generator(seed) {
    var a = seed >>> 0;
    return function () {
      a = (a + 0x6D2B79F5) >>> 0;
      var t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function randomWords(count) {
    var words = new Uint32Array(count);
    window.crypto.getRandomValues(words);
    return Array.prototype.slice.call(words);
  }

  function shuffle(list, rand) {
    for (var i = list.length - 1; i > 0; i--) {
      var j = Math.floor(rand() * (i + 1));
      var t = list[i]; list[i] = list[j]; list[j] = t;
    }
    return list;
  }

  // per_participant clips of every length, then one shuffled order over all of them.
  function selectClips(seed) {
    var rand = generator(seed);
    var chosen = [];
    KIT.lengths.forEach(function (frames) {
      var pool = KIT.clips.filter(function (c) { return c.frames === frames; });
      chosen = chosen.concat(shuffle(pool, rand).slice(0, KIT.per_participant));
    });
    return shuffle(chosen, rand);
  }

  function clock(seconds) {
    if (!isFinite(seconds)) { seconds = 0; }
    var s = Math.floor(seconds);
    return Math.floor(s / 60) + ":" + ("0" + (s % 60)).slice(-2);
  }

  var params = new URLSearchParams(window.location.search);
  var state = null;  // set by start()

  function show(index) {
    var previous = state.audio[state.index];
    if (previous && !previous.paused) { previous.pause(); }
    state.index = index;
    state.shownAt = Date.now();
    var audio = state.audio[index];
    var answered = state.answers.filter(function (a) { return a !== null; }).length;
    $("progress-text").textContent = "Piece " + (index + 1) + " of " + state.order.length;
    $("progress").max = state.order.length;
    $("progress").value = answered;
    $("play").innerHTML = "&#9654; Play";
    $("time").textContent = clock(audio.currentTime) + " / " + clock(audio.duration);
    var current = state.answers[index];
    var ready = state.plays[index] > 0 || current !== null;
    ["human", "computer"].forEach(function (choice) {
      $(choice).disabled = !ready;
      $(choice).classList.toggle("chosen", current !== null && current.answer === choice);
    });
    $("hint").textContent = ready ? "" : "Play the piece to answer.";
    $("back").hidden = index === 0;
    // Load the next piece ahead so it starts at once.
    if (index + 1 < state.audio.length) { state.audio[index + 1].preload = "auto"; }
  }

  function makeAudio(clip, i) {
    var audio = document.createElement("audio");
    audio.preload = i === 0 ? "auto" : "metadata";
    audio.src = clip.file;
    audio.dataset.clip = clip.id;
    audio.addEventListener("play", function () {
      state.plays[i] += 1;
      if (state.index === i) {
        $("play").innerHTML = "&#10074;&#10074; Pause";
        $("human").disabled = false;
        $("computer").disabled = false;
        $("hint").textContent = "";
      }
    });
    audio.addEventListener("timeupdate", function () {
      var step = audio.currentTime - state.lastTime[i];
      if (step > 0 && step < 1) { state.listened[i] += step; }
      state.lastTime[i] = audio.currentTime;
      if (state.index === i) { $("time").textContent = clock(audio.currentTime) + " / " + clock(audio.duration); }
    });
    audio.addEventListener("seeked", function () { state.lastTime[i] = audio.currentTime; });
    audio.addEventListener("loadedmetadata", function () {
      if (state.index === i) { $("time").textContent = clock(audio.currentTime) + " / " + clock(audio.duration); }
    });
    ["pause", "ended"].forEach(function (name) {
      audio.addEventListener(name, function () { if (state.index === i) { $("play").innerHTML = "&#9654; Play"; } });
    });
    audio.addEventListener("error", function () {
      $("hint").textContent = "This piece could not be loaded (" + clip.file + ").";
    });
    $("audio").appendChild(audio);
    return audio;
  }

  function start() {
    var words = randomWords(5);
    var seed = params.has("seed") ? (parseInt(params.get("seed"), 10) >>> 0) : words[0];
    var order = selectClips(seed);
    var n = order.length;
    state = {
      participant: $("participant").value.trim(),
      session: words.slice(1).map(function (w) { return ("0000000" + w.toString(16)).slice(-8); }).join(""),
      seed: seed,
      started: new Date().toISOString(),
      order: order,
      answers: order.map(function () { return null; }),
      plays: order.map(function () { return 0; }),
      listened: order.map(function () { return 0; }),
      lastTime: order.map(function () { return 0; }),
      index: 0,
      finished: null,
      audio: [],
    };
    state.audio = order.map(makeAudio);
    $("intro").hidden = true;
    $("trial").hidden = false;
    show(0);
  }

  function choose(answer) {
    var i = state.index;
    state.answers[i] = {
      clip: state.order[i].id,
      frames: state.order[i].frames,
      position: i,
      answer: answer,
      plays: state.plays[i],
      listened_seconds: Math.round(state.listened[i] * 100) / 100,
      response_ms: Date.now() - state.shownAt,
    };
    var next = state.answers.indexOf(null, i + 1);
    if (next < 0) { next = state.answers.indexOf(null); }
    if (next < 0) { finish(); } else { show(next); }
  }

  function answersJson() {
    return JSON.stringify({
      format: FORMAT,
      version: 1,
      kit_id: KIT.kit_id,
      participant: state.participant,
      session: state.session,
      seed: state.seed,
      started: state.started,
      finished: state.finished,
      user_agent: navigator.userAgent,
      order: state.order.map(function (c) { return c.id; }),
      answers: state.answers,
    }, null, 1);
  }

  function finish() {
    state.audio.forEach(function (a) { a.pause(); });
    state.finished = new Date().toISOString();
    $("trial").hidden = true;
    $("done").hidden = false;
    $("answered-count").textContent = state.order.length;
    $("answers-text").value = answersJson();
  }

  function download() {
    var blob = new Blob([answersJson()], { type: "application/json" });
    var link = document.createElement("a");
    var name = (state.participant || "participant").replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 40);
    link.href = URL.createObjectURL(blob);
    link.download = "answers-" + name + "-" + state.session.slice(0, 8) + ".json";
    document.body.appendChild(link);
    link.click();
    document.body.removeChild(link);
  }

  function init() {
    if (!KIT || !KIT.clips || !KIT.clips.length) {
      $("error").hidden = false;
      $("error").textContent = "The clip list (clips.js) is missing: open the page inside its kit folder.";
      $("start").disabled = true;
      return;
    }
    var total = KIT.lengths.length * KIT.per_participant;
    $("clip-count").textContent = total;
    $("minutes").textContent = Math.max(5, Math.round(total * 0.3));
    if (params.has("participant")) { $("participant").value = params.get("participant"); }
    $("start").addEventListener("click", start);
    $("play").addEventListener("click", function () {
      var audio = state.audio[state.index];
      if (audio.paused) {
        if (audio.ended) { audio.currentTime = 0; }
        audio.play().catch(function (err) { $("hint").textContent = "Playback failed: " + err.message; });
      } else {
        audio.pause();
      }
    });
    $("human").addEventListener("click", function () { choose("human"); });
    $("computer").addEventListener("click", function () { choose("computer"); });
    $("back").addEventListener("click", function () { if (state.index > 0) { show(state.index - 1); } });
    $("download").addEventListener("click", download);
    window.addEventListener("beforeunload", function (event) {
      if (state && !state.finished) { event.preventDefault(); event.returnValue = ""; }
    });
  }

  init();
}());
