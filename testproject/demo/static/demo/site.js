// WebSocket echo against /ws/echo (plain ASGI route in testproject/asgi.py)
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("ws-send");
  if (!button) return;
  var prefix = document.querySelector("link[rel=stylesheet]").getAttribute("href").split("/static/")[0];
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(scheme + location.host + prefix + "/ws/echo");
  ws.onmessage = function (event) { document.getElementById("ws-out").textContent = event.data; };
  button.addEventListener("click", function () { ws.send(document.getElementById("ws-in").value); });
});
