/** The request and reply payload of every pattern (docs/protocol.md 5), for typed calls. */
export interface TransactionReply {
  id: string;
  userId: string;
  amount: string;
  reference: string | null;
  description: string | null;
  createdAt: string;
}

export interface PaiPatterns {
  'system.ping': {
    request: Record<string, never>;
    reply: { serverTime: number };
  };
  'auth.register': {
    request: { username: string; password: string };
    reply: { userId: string; username: string; createdAt: string };
  };
  'auth.login': {
    request: { username: string; password: string };
    reply: { token: string; userId: string; expiresAt: string };
  };
  'auth.logout': { request: { token: string }; reply: { revoked: true } };
  'users.me': {
    request: { token: string };
    reply: {
      userId: string;
      username: string;
      createdAt: string;
      transactionCount: number;
      total: string;
    };
  };
  'transactions.create': {
    request: {
      token: string;
      amount: string;
      reference?: string;
      description?: string;
    };
    reply: { transaction: TransactionReply; created: boolean };
  };
  'transactions.list': {
    request: { token: string; limit?: number; before?: string };
    reply: { items: TransactionReply[]; nextBefore: string | null };
  };
}

export type PaiPattern = keyof PaiPatterns;
