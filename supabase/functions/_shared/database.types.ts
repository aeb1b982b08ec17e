export type Json =
  | string
  | number
  | boolean
  | null
  | { [key: string]: Json | undefined }
  | Json[]

export type Database = {
  public: {
    Tables: {
      credit_ledger: {
        Row: {
          amount: number
          balance_after: number
          created_at: string
          id: number
          idempotency_key: string | null
          job_id: string | null
          kind: string
          reason: string
          user_id: string
        }
        Insert: {
          amount: number
          balance_after: number
          created_at?: string
          id?: never
          idempotency_key?: string | null
          job_id?: string | null
          kind: string
          reason: string
          user_id: string
        }
        Update: {
          amount?: number
          balance_after?: number
          created_at?: string
          id?: never
          idempotency_key?: string | null
          job_id?: string | null
          kind?: string
          reason?: string
          user_id?: string
        }
        Relationships: [
          {
            foreignKeyName: "credit_ledger_job_id_fkey"
            columns: ["job_id"]
            isOneToOne: false
            referencedRelation: "generation_jobs"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "credit_ledger_user_id_fkey"
            columns: ["user_id"]
            isOneToOne: false
            referencedRelation: "profiles"
            referencedColumns: ["id"]
          },
        ]
      }
      generation_jobs: {
        Row: {
          aspect_ratio: string
          completed_at: string | null
          created_at: string
          credits_charged: number
          deleted_at: string | null
          error_code: string | null
          error_message: string | null
          id: string
          idempotency_key: string | null
          image_count: number
          input_image_urls: string[]
          inputs: NonNullable<Json>
          mode: string
          model_key: string
          negative_prompt: string | null
          prompt: string
          quality: string
          request: NonNullable<Json>
          request_fingerprint: string
          result_urls: string[]
          results_removed_at: string | null
          retry_of: string | null
          stage: string
          status: string
          style: string | null
          template_id: string | null
          updated_at: string
          user_id: string
        }
        Insert: {
          aspect_ratio: string
          completed_at?: string | null
          created_at?: string
          credits_charged: number
          deleted_at?: string | null
          error_code?: string | null
          error_message?: string | null
          id?: string
          idempotency_key?: string | null
          image_count?: number
          input_image_urls?: string[]
          inputs?: NonNullable<Json>
          mode: string
          model_key: string
          negative_prompt?: string | null
          prompt: string
          quality: string
          request: NonNullable<Json>
          request_fingerprint: string
          result_urls?: string[]
          results_removed_at?: string | null
          retry_of?: string | null
          stage?: string
          status?: string
          style?: string | null
          template_id?: string | null
          updated_at?: string
          user_id: string
        }
        Update: {
          aspect_ratio?: string
          completed_at?: string | null
          created_at?: string
          credits_charged?: number
          deleted_at?: string | null
          error_code?: string | null
          error_message?: string | null
          id?: string
          idempotency_key?: string | null
          image_count?: number
          input_image_urls?: string[]
          inputs?: NonNullable<Json>
          mode?: string
          model_key?: string
          negative_prompt?: string | null
          prompt?: string
          quality?: string
          request?: NonNullable<Json>
          request_fingerprint?: string
          result_urls?: string[]
          results_removed_at?: string | null
          retry_of?: string | null
          stage?: string
          status?: string
          style?: string | null
          template_id?: string | null
          updated_at?: string
          user_id?: string
        }
        Relationships: [
          {
            foreignKeyName: "generation_jobs_model_key_fkey"
            columns: ["model_key"]
            isOneToOne: false
            referencedRelation: "models"
            referencedColumns: ["key"]
          },
          {
            foreignKeyName: "generation_jobs_retry_of_fkey"
            columns: ["retry_of"]
            isOneToOne: false
            referencedRelation: "generation_jobs"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "generation_jobs_style_fkey"
            columns: ["style"]
            isOneToOne: false
            referencedRelation: "styles"
            referencedColumns: ["key"]
          },
          {
            foreignKeyName: "generation_jobs_template_id_fkey"
            columns: ["template_id"]
            isOneToOne: false
            referencedRelation: "templates"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "generation_jobs_user_id_fkey"
            columns: ["user_id"]
            isOneToOne: false
            referencedRelation: "profiles"
            referencedColumns: ["id"]
          },
        ]
      }
      models: {
        Row: {
          aspect_ratios: string[]
          created_at: string
          credit_cost: number
          display_name: string
          image_input_field: string | null
          is_active: boolean
          key: string
          kie_model: string
          max_input_images: number
          max_prompt_length: number
          min_input_images: number
          min_plan: string
          mode: string
          quality: string
          updated_at: string
        }
        Insert: {
          aspect_ratios: string[]
          created_at?: string
          credit_cost: number
          display_name: string
          image_input_field?: string | null
          is_active?: boolean
          key: string
          kie_model: string
          max_input_images?: number
          max_prompt_length: number
          min_input_images?: number
          min_plan: string
          mode: string
          quality: string
          updated_at?: string
        }
        Update: {
          aspect_ratios?: string[]
          created_at?: string
          credit_cost?: number
          display_name?: string
          image_input_field?: string | null
          is_active?: boolean
          key?: string
          kie_model?: string
          max_input_images?: number
          max_prompt_length?: number
          min_input_images?: number
          min_plan?: string
          mode?: string
          quality?: string
          updated_at?: string
        }
        Relationships: [
          {
            foreignKeyName: "models_min_plan_fkey"
            columns: ["min_plan"]
            isOneToOne: false
            referencedRelation: "plans"
            referencedColumns: ["id"]
          },
        ]
      }
      plans: {
        Row: {
          created_at: string
          id: string
          is_metered: boolean
          max_active_jobs: number
          name: string
          rank: number
          result_retention_days: number
          signup_credits: number
          starts_per_minute: number
          updated_at: string
        }
        Insert: {
          created_at?: string
          id: string
          is_metered?: boolean
          max_active_jobs: number
          name: string
          rank: number
          result_retention_days?: number
          signup_credits?: number
          starts_per_minute: number
          updated_at?: string
        }
        Update: {
          created_at?: string
          id?: string
          is_metered?: boolean
          max_active_jobs?: number
          name?: string
          rank?: number
          result_retention_days?: number
          signup_credits?: number
          starts_per_minute?: number
          updated_at?: string
        }
        Relationships: []
      }
      profiles: {
        Row: {
          created_at: string
          credits: number
          id: string
          plan: string
          updated_at: string
        }
        Insert: {
          created_at?: string
          credits?: number
          id: string
          plan?: string
          updated_at?: string
        }
        Update: {
          created_at?: string
          credits?: number
          id?: string
          plan?: string
          updated_at?: string
        }
        Relationships: [
          {
            foreignKeyName: "profiles_plan_fkey"
            columns: ["plan"]
            isOneToOne: false
            referencedRelation: "plans"
            referencedColumns: ["id"]
          },
        ]
      }
      styles: {
        Row: {
          created_at: string
          is_active: boolean
          key: string
          name: string
          order: number
          prompt_fragment: string
          thumbnail_url: string | null
          updated_at: string
        }
        Insert: {
          created_at?: string
          is_active?: boolean
          key: string
          name: string
          order?: number
          prompt_fragment: string
          thumbnail_url?: string | null
          updated_at?: string
        }
        Update: {
          created_at?: string
          is_active?: boolean
          key?: string
          name?: string
          order?: number
          prompt_fragment?: string
          thumbnail_url?: string | null
          updated_at?: string
        }
        Relationships: []
      }
      templates: {
        Row: {
          category: string
          created_at: string
          default_aspect_ratio: string
          description: string
          id: string
          input_fields: NonNullable<Json>
          is_active: boolean
          is_premium: boolean
          max_images: number
          min_images: number
          name: string
          order: number
          prompt_template: string
          published_at: string | null
          thumbnail_url: string | null
          updated_at: string
        }
        Insert: {
          category: string
          created_at?: string
          default_aspect_ratio?: string
          description?: string
          id?: string
          input_fields?: NonNullable<Json>
          is_active?: boolean
          is_premium?: boolean
          max_images?: number
          min_images?: number
          name: string
          order?: number
          prompt_template: string
          published_at?: string | null
          thumbnail_url?: string | null
          updated_at?: string
        }
        Update: {
          category?: string
          created_at?: string
          default_aspect_ratio?: string
          description?: string
          id?: string
          input_fields?: NonNullable<Json>
          is_active?: boolean
          is_premium?: boolean
          max_images?: number
          min_images?: number
          name?: string
          order?: number
          prompt_template?: string
          published_at?: string | null
          thumbnail_url?: string | null
          updated_at?: string
        }
        Relationships: []
      }
    }
    Views: {
      [_ in never]: never
    }
    Functions: {
      cancel_generation: {
        Args: { job_id: string }
        Returns: {
          aspect_ratio: string
          completed_at: string | null
          created_at: string
          credits_charged: number
          deleted_at: string | null
          error_code: string | null
          error_message: string | null
          id: string
          idempotency_key: string | null
          image_count: number
          input_image_urls: string[]
          inputs: NonNullable<Json>
          mode: string
          model_key: string
          negative_prompt: string | null
          prompt: string
          quality: string
          request: NonNullable<Json>
          request_fingerprint: string
          result_urls: string[]
          results_removed_at: string | null
          retry_of: string | null
          stage: string
          status: string
          style: string | null
          template_id: string | null
          updated_at: string
          user_id: string
        }
        SetofOptions: {
          from: "*"
          to: "generation_jobs"
          isOneToOne: true
          isSetofReturn: false
        }
      }
      delete_generation: { Args: { job_id: string }; Returns: undefined }
      grant_credits: {
        Args: {
          amount: number
          idempotency_key?: string
          reason: string
          user_id: string
        }
        Returns: {
          amount: number
          balance_after: number
          created_at: string
          id: number
          idempotency_key: string | null
          job_id: string | null
          kind: string
          reason: string
          user_id: string
        }
        SetofOptions: {
          from: "*"
          to: "credit_ledger"
          isOneToOne: true
          isSetofReturn: false
        }
      }
      recent_prompts: {
        Args: { limit?: number }
        Returns: Database["public"]["CompositeTypes"]["recent_prompt"][]
        SetofOptions: {
          from: "*"
          to: "recent_prompt"
          isOneToOne: false
          isSetofReturn: true
        }
      }
      retry_generation: {
        Args: { job_id: string }
        Returns: {
          aspect_ratio: string
          completed_at: string | null
          created_at: string
          credits_charged: number
          deleted_at: string | null
          error_code: string | null
          error_message: string | null
          id: string
          idempotency_key: string | null
          image_count: number
          input_image_urls: string[]
          inputs: NonNullable<Json>
          mode: string
          model_key: string
          negative_prompt: string | null
          prompt: string
          quality: string
          request: NonNullable<Json>
          request_fingerprint: string
          result_urls: string[]
          results_removed_at: string | null
          retry_of: string | null
          stage: string
          status: string
          style: string | null
          template_id: string | null
          updated_at: string
          user_id: string
        }
        SetofOptions: {
          from: "*"
          to: "generation_jobs"
          isOneToOne: true
          isSetofReturn: false
        }
      }
      set_plan: {
        Args: { plan: string; user_id: string }
        Returns: {
          created_at: string
          credits: number
          id: string
          plan: string
          updated_at: string
        }
        SetofOptions: {
          from: "*"
          to: "profiles"
          isOneToOne: true
          isSetofReturn: false
        }
      }
      start_generation: {
        Args: {
          aspect_ratio?: string
          idempotency_key?: string
          image_urls?: string[]
          inputs?: Json
          negative_prompt?: string
          prompt?: string
          quality?: string
          style?: string
          template_id?: string
        }
        Returns: {
          aspect_ratio: string
          completed_at: string | null
          created_at: string
          credits_charged: number
          deleted_at: string | null
          error_code: string | null
          error_message: string | null
          id: string
          idempotency_key: string | null
          image_count: number
          input_image_urls: string[]
          inputs: NonNullable<Json>
          mode: string
          model_key: string
          negative_prompt: string | null
          prompt: string
          quality: string
          request: NonNullable<Json>
          request_fingerprint: string
          result_urls: string[]
          results_removed_at: string | null
          retry_of: string | null
          stage: string
          status: string
          style: string | null
          template_id: string | null
          updated_at: string
          user_id: string
        }
        SetofOptions: {
          from: "*"
          to: "generation_jobs"
          isOneToOne: true
          isSetofReturn: false
        }
      }
    }
    Enums: {
      [_ in never]: never
    }
    CompositeTypes: {
      recent_prompt: {
        prompt: string | null
        style: string | null
        quality: string | null
        aspect_ratio: string | null
        last_used_at: string | null
      }
    }
  }
}

type DatabaseWithoutInternals = Omit<Database, "__InternalSupabase">

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, "public">]

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends (DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
        DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])
    : never) = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
      DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])[TableName] extends {
      Row: infer R
    }
    ? R
    : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema["Tables"] &
        DefaultSchema["Views"])
    ? (DefaultSchema["Tables"] &
        DefaultSchema["Views"])[DefaultSchemaTableNameOrOptions] extends {
        Row: infer R
      }
      ? R
      : never
    : never

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends (DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never) = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Insert: infer I
    }
    ? I
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
        Insert: infer I
      }
      ? I
      : never
    : never

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends (DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never) = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Update: infer U
    }
    ? U
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
        Update: infer U
      }
      ? U
      : never
    : never

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema["Enums"]
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends (DefaultSchemaEnumNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"]
    : never) = never,
> = DefaultSchemaEnumNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema["Enums"]
    ? DefaultSchema["Enums"][DefaultSchemaEnumNameOrOptions]
    : never

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema["CompositeTypes"]
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends (PublicCompositeTypeNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"]
    : never) = never,
> = PublicCompositeTypeNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"][CompositeTypeName]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema["CompositeTypes"]
    ? DefaultSchema["CompositeTypes"][PublicCompositeTypeNameOrOptions]
    : never

export const Constants = {
  public: {
    Enums: {},
  },
} as const

