import { LoginThrottle } from '../auth/login-throttle.entity';
import { Session } from '../sessions/session.entity';
import { UsedNonce } from '../nonce-record/used-nonce.entity';
import { Transaction } from '../transactions/transaction.entity';
import { User } from '../users/user.entity';

export const entities = [User, Transaction, Session, LoginThrottle, UsedNonce];
