/** What another Nest service imports from this package (subpaths give the wire pieces: `@pai/client/protocol/mac`, …). */
export { PaiClient, type PaiClientOptions } from './client/pai-client';
export {
  PaiClientModule,
  createPaiClient,
  PAI_CLIENT_OPTIONS,
  type PaiClientModuleAsyncOptions,
  type PaiClientModuleOptions,
  type PaiNatsClientOptions,
} from './client/pai-client.module';
export {
  PaiClientError,
  ClientErrorCode,
  type PaiErrorCode,
} from './client/pai-client.error';
export {
  receiptProblem,
  leafHash,
  blockHash,
  GENESIS_HASH,
} from './protocol/receipt';
export type {
  BlockHeader,
  LedgerDigest,
  Receipt,
  PaiPatterns,
  PaiPattern,
  TransactionReply,
} from './protocol/patterns';
export { ErrorCode } from './protocol/error-code';
export { ConfigError } from './config/config.error';
