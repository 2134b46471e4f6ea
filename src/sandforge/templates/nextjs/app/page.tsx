import Counter from "./counter";

export default function Home() {
  return (
    <main className="card">
      <h1>{{heading}}</h1>
      <p className="description">{{description}}</p>
      <Counter />
    </main>
  );
}
