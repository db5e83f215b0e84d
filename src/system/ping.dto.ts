/** system.ping takes an empty payload: any field is unknown. */
export class PingDto {}
