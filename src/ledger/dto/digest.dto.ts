/** ledger.digest takes an empty payload: any field is unknown. */
export class DigestDto {}
