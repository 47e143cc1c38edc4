// The derived views every replica keeps, in the order they are fed: one list, so that the node
// (node/node_views.ts) and the offline rebuild (`kimberlite-admin views`, cli/admin_views.ts)
// cannot disagree on which views exist. A new view is added here (docs/views.md).
//
// Invariant: `all` holds each view once, names unique (the view host asserts it).

import { StreamIndex } from './stream_index.js';
import type { View } from './view.js';

export interface ViewSet {
  /** The stream read index, which the query service reads. */
  readonly streamIndex: StreamIndex;
  /** Every view, in feed order. */
  readonly all: readonly View[];
}

/** A fresh set of views, each at position 0. */
export function createViewSet(): ViewSet {
  const streamIndex = new StreamIndex();
  return { streamIndex, all: [streamIndex] };
}
