/**
 * The rooms of src/ and the rooms each may import from: the one place the directions are written
 * down. Every direction points down this list, so no cycle between rooms can form; `npm run lint`
 * fails on an import against it, and on a module-level cycle anywhere.
 *
 * Specs are left out of the room rules: a unit spec may build its fixtures from what it tests
 * with (the payload pipe's spec checks the real DTOs). What ships obeys them.
 */
const rooms = {
  common: [],
  config: ['common'],
  observability: ['common', 'config'],
  database: ['common', 'config', 'observability'],
  'nonce-record': ['common', 'config', 'observability', 'database'],
  protocol: ['common', 'config', 'observability', 'nonce-record'],
  transport: ['common', 'config', 'observability', 'protocol'],
  sessions: ['common', 'config', 'database', 'protocol'],
  transactions: ['common', 'config', 'database', 'protocol', 'sessions'],
  users: [
    'common',
    'config',
    'database',
    'protocol',
    'sessions',
    'transactions',
  ],
  auth: ['common', 'config', 'database', 'protocol', 'sessions', 'users'],
  ledger: [
    'common',
    'config',
    'observability',
    'database',
    'protocol',
    'sessions',
    'transactions',
  ],
  system: ['common', 'protocol'],
};

/**
 * The client package (clients/node, `@pai/client`): its own rooms, below every room of the service,
 * which imports the wire pieces from it. It imports nothing of the service.
 */
const clientRooms = {
  config: [],
  protocol: ['config'],
  client: ['config', 'protocol'],
  cli: ['config', 'protocol', 'client'],
};

const names = Object.keys(rooms).join('|');

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...Object.entries(rooms).map(([room, allowed]) => ({
      name: `room-${room}`,
      comment: `src/${room} may import only from ${allowed.length ? allowed.join(', ') : 'no other room'} (.dependency-cruiser.cjs)`,
      severity: 'error',
      from: { path: `^src/${room}/`, pathNot: '\\.spec\\.ts$' },
      to: {
        path: '^src/',
        pathNot: `^src/(${[room, ...allowed].join('|')})/`,
      },
    })),
    ...Object.entries(clientRooms).map(([room, allowed]) => ({
      name: `client-room-${room}`,
      comment: `clients/node/src/${room} may import only from ${allowed.length ? allowed.join(', ') : 'no other room'} of the client package (.dependency-cruiser.cjs)`,
      severity: 'error',
      from: { path: `^clients/node/src/${room}/`, pathNot: '\\.spec\\.ts$' },
      to: {
        path: '^(src|clients/node/src)/',
        pathNot: `^clients/node/src/(${[room, ...allowed].join('|')})/`,
      },
    })),
    {
      name: 'client-package-alone',
      comment: 'the client package imports nothing of the service',
      severity: 'error',
      from: { path: '^clients/node/src/' },
      to: { path: '^src/' },
    },
    {
      name: 'room-unknown',
      comment:
        'every folder of src/ is a room listed in .dependency-cruiser.cjs',
      severity: 'error',
      from: { path: `^src/(?!(${names})/)[^/]+/` },
      to: {},
    },
    {
      name: 'no-circular',
      comment: 'no import cycle, between rooms or inside one',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    // What a room needs at run time and for its types alike counts.
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
    },
  },
};
