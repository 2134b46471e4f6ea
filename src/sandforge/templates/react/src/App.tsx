import { useState } from "react";

export default function App() {
  const [clicks, setClicks] = useState(0);
  return (
    <main className="card">
      <h1>{{heading}}</h1>
      <p className="description">{{description}}</p>
      <button type="button" onClick={() => setClicks((n) => n + 1)}>
        Clicked {clicks} {clicks === 1 ? "time" : "times"}
      </button>
    </main>
  );
}
