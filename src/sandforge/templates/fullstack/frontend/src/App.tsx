import { type FormEvent, useEffect, useState } from "react";

type Item = { id: number; title: string };

export default function App() {
  const [items, setItems] = useState<Item[]>([]);
  const [title, setTitle] = useState("");
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    fetch("/api/items")
      .then((response) => (response.ok ? response.json() : Promise.reject(response.statusText)))
      .then((data: Item[]) => setItems(data))
      .catch((reason) => setError(String(reason)));
  }, []);

  async function add(event: FormEvent) {
    event.preventDefault();
    if (!title.trim()) return;
    const response = await fetch("/api/items", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title }),
    });
    if (!response.ok) {
      setError(response.statusText);
      return;
    }
    const item: Item = await response.json();
    setItems((current) => [...current, item]);
    setTitle("");
  }

  return (
    <main className="card">
      <h1>{{heading}}</h1>
      <p className="description">{{description}}</p>
      {error && <p role="alert">Could not reach the backend: {error}</p>}
      <ul className="items">
        {items.map((item) => (
          <li key={item.id}>{item.title}</li>
        ))}
      </ul>
      <form onSubmit={add}>
        <input value={title} onChange={(e) => setTitle(e.target.value)} placeholder="New item" />
        <button type="submit">Add</button>
      </form>
    </main>
  );
}
