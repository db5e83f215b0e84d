import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { SignedPayload } from '../protocol/payload.pipe';
import { AuthService } from './auth.service';
import { CredentialsDto } from './dto/credentials.dto';
import { TokenDto } from '../sessions/token.dto';

@Controller()
export class AuthController {
  constructor(private readonly auth: AuthService) {}

  @MessagePattern('auth.register')
  register(@SignedPayload() payload: CredentialsDto) {
    return this.auth.register(payload);
  }

  @MessagePattern('auth.login')
  login(@SignedPayload() payload: CredentialsDto) {
    return this.auth.login(payload);
  }

  @MessagePattern('auth.logout')
  logout(@SignedPayload() payload: TokenDto) {
    return this.auth.logout(payload.token);
  }
}
