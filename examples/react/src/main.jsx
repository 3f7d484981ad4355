import { createElement as h, useState } from "react";
import { createRoot } from "react-dom/client";

function App() {
  const [count, setCount] = useState(0);
  return h(
    "main",
    null,
    h("h1", null, "Built once, shipped everywhere"),
    h("button", { onClick: () => setCount(count + 1) }, `clicked ${count} times`),
  );
}

createRoot(document.getElementById("root")).render(h(App));
