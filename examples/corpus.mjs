// Writes examples/corpus.jsonl, the demo's corpus: 300 short texts, 60 on each of five topics,
// from a seeded generator, so the file is the same on every run:
//   node examples/corpus.mjs > examples/corpus.jsonl
let s = 42;
const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const pick = (a) => a[Math.floor(rnd() * a.length)];
// Headline-style texts: every fragment carries the topic's own words, so that a bag-of-words
// embedder separates the five topics.
const topics = {
  astronomy: [
    ["Telescope", "Astronomers", "Space probe", "Observatory", "Mars rover", "Orbiting satellite"],
    ["spots", "images", "maps", "tracks", "measures", "detects"],
    ["distant galaxy cluster", "comet tail near the sun", "Saturn rings and moons", "new exoplanet orbit", "dying star supernova", "lunar craters", "glowing nebula gas"],
    ["during solar eclipse", "beyond the solar system", "in infrared starlight", "light years from Earth", "after long orbit around Jupiter", "across the night sky"],
    ["Cosmologists cheer.", "Planetarium shows update.", "Gravity data confirms orbits.", "Stargazers watch meteors.", "Rocket launch follows.", "Spectrum reveals hydrogen."],
  ],
  cooking: [
    ["Chef", "Grandmother", "Baker", "Home cook", "Restaurant kitchen", "Pastry team"],
    ["simmers", "roasts", "kneads", "seasons", "bakes", "whisks"],
    ["tomato soup with basil", "bread dough and flour", "garlic, onion and butter", "chocolate cake batter", "roast chicken with herbs", "creamy mushroom risotto", "spiced lentil stew"],
    ["in a hot oven", "for a family dinner recipe", "with olive oil and pepper", "until the crust is golden", "in a cast iron pan", "with a pinch of sea salt"],
    ["Diners taste seconds.", "Sauce thickens nicely.", "Kitchen smells of cinnamon.", "Recipe serves four.", "Dessert follows lunch.", "Spices warm the broth."],
  ],
  football: [
    ["Striker", "Goalkeeper", "Home team", "Head coach", "Midfielder", "Club captain"],
    ["scores", "saves", "wins", "defends", "celebrates", "shoots"],
    ["late penalty goal", "league championship title", "header from a corner kick", "derby against local rivals", "free kick into the net", "cup final trophy"],
    ["in a packed stadium", "after extra time", "as the referee whistles", "in the second half of the match", "to top the league table", "before the transfer window"],
    ["Supporters chant anthems.", "Offside flag stays down.", "Manager praises tactics.", "Pundits replay the tackle.", "Goalposts rattle.", "Season tickets sell out."],
  ],
  finance: [
    ["Central bank", "Investors", "Stock market", "Hedge fund", "Bond traders", "Listed company"],
    ["raises", "sells", "buys", "reports", "hedges", "forecasts"],
    ["interest rates", "bank shares and equities", "quarterly earnings and profit", "government bond yields", "currency exchange rates", "dividends for shareholders", "inflation and loan rates"],
    ["as stock prices fall", "when the trading session opens", "amid recession fears", "on the exchange floor", "to steady the bond market", "despite weak revenue"],
    ["Analysts downgrade forecasts.", "Pension funds rebalance portfolios.", "Credit spreads widen.", "Treasury auctions clear.", "Mortgage costs climb.", "Brokers expect volatility."],
  ],
  gardening: [
    ["Gardener", "Neighbour", "Allotment club", "Volunteer", "Greenhouse crew", "Florist"],
    ["plants", "prunes", "waters", "harvests", "composts", "weeds"],
    ["tulip bulbs and daffodils", "apple trees in the orchard", "tomato seedlings", "rose bushes", "a bed of herbs and lavender", "potatoes and carrots", "the hawthorn hedge"],
    ["in spring sunshine", "before the first frost", "with rich compost and mulch", "in the vegetable patch", "after summer rain", "along the flower border"],
    ["Bees visit blossoms.", "Seeds sprout quickly.", "Soil stays moist.", "Petals open at dawn.", "Roots spread deep.", "Shrubs need trimming."],
  ],
};
const out = [];
const seen = new Set();
for (const [topic, parts] of Object.entries(topics)) {
  let n = 0;
  while (n < 60) {
    const text = `${parts.slice(0, 4).map(pick).join(" ")}. ${pick(parts[4])}`;
    if (seen.has(text)) continue;
    seen.add(text);
    out.push({ topic, text });
    n++;
  }
}
for (let i = out.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [out[i], out[j]] = [out[j], out[i]]; }
process.stdout.write(out.map((o) => JSON.stringify(o)).join("\n") + "\n");
