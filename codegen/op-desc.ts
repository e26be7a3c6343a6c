// Moved to ops/ (the op layer). This re-export lets branches written against the old path merge; it goes
// once every import reads ops/index.js.
export * from '../ops/index.js';
