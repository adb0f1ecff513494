// Opens a WebSocket to /ws/echo (under FORCE_SCRIPT_NAME if any), sends ?message=..., shows the echo.
document.addEventListener("DOMContentLoaded", function () {
  var status = document.getElementById("ws-status");
  var result = document.getElementById("ws-result");
  var message = new URLSearchParams(location.search).get("message") || "hello";
  var src = document.querySelector("script[src*='ws_echo']").getAttribute("src");
  var prefix = src.split("/static/")[0];
  var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + prefix + "/ws/echo");
  status.textContent = "connecting";
  ws.onopen = function () { status.textContent = "open"; ws.send(message); };
  ws.onmessage = function (event) { result.textContent = event.data; status.textContent = "echoed"; ws.close(1000); };
  ws.onerror = function () { if (status.textContent !== "echoed") status.textContent = "error"; };
  ws.onclose = function (event) { if (status.textContent !== "echoed") status.textContent = "closed " + event.code; };
});
