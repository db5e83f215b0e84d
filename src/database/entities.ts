import { LoginThrottle } from '../auth/login-throttle.entity';
import { Session } from '../auth/session.entity';
import { UsedNonce } from '../protocol/used-nonce.entity';
import { Transaction } from '../transactions/transaction.entity';
import { User } from '../users/user.entity';

export const entities = [User, Transaction, Session, LoginThrottle, UsedNonce];
