// Carries the view's hash (e.g. #/nodes/node-a?range=1h) through sign-in.
"use strict";
document.getElementById("next").value = location.hash;
