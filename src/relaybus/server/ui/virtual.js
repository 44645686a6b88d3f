// A virtual list: only the rows in view (and a margin) are in the page, so a list of
// 100,000 rows costs what a screenful costs. Rows have one fixed height (`rowHeight`,
// in px, matching the CSS); the scroller holds a spacer of the full height.
//
// Use in a view: `...virtualList(32)` in its data, `x-ref="scroller"` and
// `@scroll.passive="onScroll()"` on the scrolling element, then
// `<div :style="spacer(items)"><div :style="offset(items)"><template x-for="row in
// visible(items)" :key="row.id">…` (see views/agents.js and index.html).

export function virtualList(rowHeight, margin = 8) {
  return {
    rowHeight,
    scrollTop: 0,
    viewHeight: 800,

    onScroll() {
      const el = this.$refs.scroller;
      this.scrollTop = el.scrollTop;
      this.viewHeight = el.clientHeight || this.viewHeight;
    },

    /** The first row drawn. */
    first(items) {
      const first = Math.floor(this.scrollTop / this.rowHeight) - margin;
      return Math.max(0, Math.min(first, items.length - 1));
    },

    /** The rows to draw: those in view plus `margin` on each side. */
    visible(items) {
      const first = this.first(items);
      const count = Math.ceil(this.viewHeight / this.rowHeight) + 2 * margin;
      return items.slice(first, first + count);
    },

    spacer(items) {
      return `height: ${items.length * this.rowHeight}px; position: relative;`;
    },

    offset(items) {
      return `transform: translateY(${this.first(items) * this.rowHeight}px);`;
    },

    /** Whether the list is scrolled within `rows` rows of its end (to load a page more). */
    nearEnd(items, rows = 20) {
      return this.scrollTop + this.viewHeight >= (items.length - rows) * this.rowHeight;
    },
  };
}
